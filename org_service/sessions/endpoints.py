"""Refreshing, listing and ending sessions (org_service/sessions/service.py)."""

from __future__ import annotations

from typing import Annotated

from bson import ObjectId
from fastapi import APIRouter, Response, status
from pydantic import StringConstraints

from org_service.deps import CurrentAuditor, CurrentTenant, MemberManager, ServicesDep
from org_service.errors import TENANT_ERRORS, NotFound, SessionEnded, TenantBusy, responses
from org_service.members.schemas import MemberId
from org_service.sessions.schemas import (
    RefreshRequest,
    SessionList,
    SessionPublic,
    SessionsEnded,
    TokenPair,
)
from org_service.sessions.service import LOGOUT, REVOKED
from org_service.strict_json import StrictJSONRoute

SessionId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{24}$")]

public_router = APIRouter(prefix="/auth", tags=["Sessions"], route_class=StrictJSONRoute)
router = APIRouter(tags=["Sessions"], route_class=StrictJSONRoute,
                   responses=responses(*TENANT_ERRORS))


@public_router.post("/refresh", response_model=TokenPair,
                    responses=responses(SessionEnded, TenantBusy))
async def refresh(body: RefreshRequest, services: ServicesDep, auditor: CurrentAuditor
                  ) -> TokenPair:
    """Exchange a refresh token for a new access token and a new refresh token; the one
    given is spent. Presenting a spent one again ends the whole session (401
    `session_ended`), except the one spent last within REFRESH_REUSE_GRACE_SECONDS, which
    gets the same pair again (two tabs refreshing at once)."""
    issued = await services.sessions.refresh(body.refresh_token, auditor)
    return TokenPair(access_token=issued.access.token, refresh_token=issued.refresh_token,
                     expires_in=issued.access.expires_in)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(tenant: CurrentTenant, services: ServicesDep, auditor: CurrentAuditor
                 ) -> Response:
    """End the session of this token: its access and refresh tokens stop working at once."""
    await services.sessions.end(ObjectId(tenant.claims.session_id), tenant.member["_id"],
                                LOGOUT)
    await auditor.record("session.logout", "success", admin_id=tenant.member_id,
                         organization_id=tenant.organization_id,
                         target=tenant.claims.session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me/sessions", response_model=SessionList)
async def my_sessions(tenant: CurrentTenant, services: ServicesDep) -> SessionList:
    """Your live sessions, most recently used first (at most 100)."""
    sessions = await services.sessions.live_of(tenant.member)
    return SessionList(sessions=[SessionPublic(
        id=str(session["_id"]), created_at=session["created_at"],
        last_used_at=session["last_used_at"], expires_at=session["expires_at"],
        idle_expires_at=session["idle_expires_at"],
        client_address=session.get("client_address"), user_agent=session.get("user_agent"),
        current=str(session["_id"]) == tenant.claims.session_id) for session in sessions])


@router.delete("/me/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses=responses(NotFound))
async def end_my_session(session_id: SessionId, tenant: CurrentTenant, services: ServicesDep,
                         auditor: CurrentAuditor) -> Response:
    """End one of your sessions (404 if it is not one of your live sessions)."""
    if not await services.sessions.end(ObjectId(session_id), tenant.member["_id"], REVOKED):
        raise NotFound("No live session of yours with this id")
    await auditor.record("session.revoke", "success", admin_id=tenant.member_id,
                         organization_id=tenant.organization_id, target=session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/org/members/{member_id}/sessions", response_model=SessionsEnded,
               responses=responses(NotFound))
async def end_member_sessions(member_id: MemberId, tenant: MemberManager,
                              services: ServicesDep, auditor: CurrentAuditor) -> SessionsEnded:
    """End every session of a member of your organization (owners and admins; only an
    owner ends an owner's): their tokens stop working at once, they log in again."""
    ended = await services.members.end_sessions(tenant, member_id)
    await auditor.record("session.revoke", "success", admin_id=tenant.member_id,
                         organization_id=tenant.organization_id,
                         target=f"{member_id} all ({ended})")
    return SessionsEnded(ended=ended)
