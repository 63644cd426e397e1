from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from org_service.audit.service import AuditEvent
from org_service.auth.schemas import MemberLoginResponse
from org_service.deps import CurrentAuditor, Inviter, ServicesDep
from org_service.errors import (
    TENANT_ERRORS,
    Conflict,
    Gone,
    NotFound,
    PermissionDenied,
    TooManyRequests,
    responses,
)
from org_service.invitations.schemas import (
    InvitationAccept,
    InvitationCreate,
    InvitationId,
    InvitationPage,
    InvitationPublic,
    InvitationState,
    InvitationToken,
    InvitationView,
    InvitationWithLink,
)
from org_service.pagination import After
from org_service.strict_json import StrictJSONRoute
from org_service.tenancy import TenantContext

router = APIRouter(prefix="/org", tags=["Invitations"], route_class=StrictJSONRoute,
                   responses=responses(*TENANT_ERRORS))
# Public: whoever holds the link. Throttled per client address.
public_router = APIRouter(prefix="/invitations", tags=["Invitations"],
                          route_class=StrictJSONRoute)

PageLimit = Annotated[int, Query(ge=1, le=200, description="1-200 invitations")]


def _event(tenant: TenantContext, target: str) -> AuditEvent:
    return AuditEvent(admin_id=tenant.member_id, organization_id=tenant.organization_id,
                      target=target)


@router.post("/invitations", status_code=status.HTTP_201_CREATED,
             response_model=InvitationWithLink,
             responses={**responses(NotFound, Conflict, PermissionDenied),
                        200: {"model": InvitationWithLink, "description": (
                            "This email's pending invitation, already made (no link)")}})
async def create_invitation(body: InvitationCreate, tenant: Inviter, services: ServicesDep,
                            auditor: CurrentAuditor, response: Response
                            ) -> InvitationWithLink:
    """Invite someone by email (owners and admins: any role but owner, up to their own; a
    manager: employees who will report to them). The link goes out by mail and is in this
    answer once. An email with a pending invitation here gets that one (200, no link);
    an email that has an account anywhere, 409; a manager_id that names no active member,
    404."""
    async with auditor.action("invitation.create", _event(tenant, str(body.email))) as event:
        invitation, created = await services.invitations.create(tenant, body)
        event.target = f"{invitation.id} {invitation.email} ({invitation.role})"
        if not created:
            event.reason = "already_pending"
    if not created:
        response.status_code = status.HTTP_200_OK
    return invitation


@router.get("/invitations", response_model=InvitationPage, responses=responses(NotFound))
async def list_invitations(tenant: Inviter, services: ServicesDep, limit: PageLimit = 50,
                           after: After = None, state: InvitationState | None = None
                           ) -> InvitationPage:
    """Invitations, newest first, kept as history (a manager sees the ones they sent)."""
    return await services.invitations.page(tenant, limit=limit, after=after, state=state)


@router.post("/invitations/{invitation_id}/resend", response_model=InvitationWithLink,
             responses=responses(NotFound, Conflict))
async def resend_invitation(invitation_id: InvitationId, tenant: Inviter,
                            services: ServicesDep, auditor: CurrentAuditor
                            ) -> InvitationWithLink:
    """Send a pending invitation again with a new link (the old one stops working at once)
    and a new expiry, as long as the first. Not pending: 409."""
    async with auditor.action("invitation.resend", _event(tenant, invitation_id)):
        return await services.invitations.resend(tenant, invitation_id)


@router.post("/invitations/{invitation_id}/revoke", response_model=InvitationPublic,
             responses=responses(NotFound, Conflict))
async def revoke_invitation(invitation_id: InvitationId, tenant: Inviter,
                            services: ServicesDep, auditor: CurrentAuditor
                            ) -> InvitationPublic:
    """Revoke a pending invitation: its link stops working. Not pending: 409."""
    async with auditor.action("invitation.revoke", _event(tenant, invitation_id)):
        return await services.invitations.revoke(tenant, invitation_id)


@public_router.get("/{token:linktoken}", response_model=InvitationView,
                   responses=responses(NotFound, Gone, TooManyRequests))
async def view_invitation(token: Annotated[InvitationToken, Path()], services: ServicesDep,
                          auditor: CurrentAuditor) -> InvitationView:
    """What an accept page shows. Unknown, revoked or used: 404; expired: 410. Links that
    lead nowhere count against the client address (429 past the failed-login limit)."""
    return await services.invitations.view(token, auditor.info.client_address)


@public_router.post("/accept", status_code=status.HTTP_201_CREATED,
                    response_model=MemberLoginResponse,
                    responses=responses(NotFound, Gone, Conflict, TooManyRequests))
async def accept_invitation(body: InvitationAccept, services: ServicesDep,
                            auditor: CurrentAuditor) -> MemberLoginResponse:
    """Become a member with the invited role (and manager, if still a member), and get a
    token as a login does (201: a member was created). Unknown, revoked or used: 404;
    expired: 410; the email has an account anywhere: 409, and the invitation stays
    pending. Throttled as GET /invitations/{token}."""
    async with auditor.action("invitation.accept", AuditEvent()) as event:
        return await services.invitations.accept(body, auditor.info, event)
