from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status

from org_service.audit.service import AuditEvent
from org_service.deps import (
    CurrentAuditor,
    CurrentTenant,
    MemberManager,
    MemberReader,
    OwnershipHolder,
    ServicesDep,
    StepUpDep,
)
from org_service.errors import (
    TENANT_ERRORS,
    Conflict,
    NotFound,
    PayloadTooLarge,
    StepUpRequired,
    TooManyRequests,
    responses,
)
from org_service.members.schemas import (
    MemberCreate,
    MemberId,
    MemberPage,
    MemberPublic,
    MemberState,
    MemberUpdate,
    MeUpdate,
    MeView,
    OwnershipTransfer,
    ReportList,
    RoleName,
    member_public,
)
from org_service.pagination import After
from org_service.strict_json import StrictJSONRoute
from org_service.tenancy import TenantContext
from org_service.verification.endpoints import record_email_change

# Every route here sits behind the tenant context, so each may answer 401 or 403.
router = APIRouter(prefix="/org", tags=["Members"], route_class=StrictJSONRoute,
                   responses=responses(*TENANT_ERRORS))
me_router = APIRouter(tags=["Members"], route_class=StrictJSONRoute,
                      responses=responses(*TENANT_ERRORS))

PageLimit = Annotated[int, Query(ge=1, le=200, description="1-200 members")]


def _event(tenant: TenantContext, target: str) -> AuditEvent:
    return AuditEvent(admin_id=tenant.member_id, organization_id=tenant.organization_id,
                      target=target)


@router.get("/members", response_model=MemberPage, responses=responses(NotFound))
async def list_members(
    tenant: MemberReader, services: ServicesDep, limit: PageLimit = 50, after: After = None,
    role: RoleName | None = None, state: MemberState | None = None,
    manager_id: MemberId | None = None,
    department: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    q: Annotated[str | None, Query(min_length=1, max_length=100, description=(
        "Case-insensitive prefix of the name or the email"))] = None,
) -> MemberPage:
    """The organization's directory, in the order members were added; filters combine."""
    return await services.members.page(tenant, limit=limit, after=after, role=role,
                                       state=state, manager_id=manager_id,
                                       department=department, q=q)


@router.post("/members", status_code=status.HTTP_201_CREATED, response_model=MemberPublic,
             responses=responses(NotFound, Conflict, PayloadTooLarge))
async def add_member(body: MemberCreate, tenant: MemberManager, services: ServicesDep,
                     auditor: CurrentAuditor) -> MemberPublic:
    """Add a member with an initial password (owners and admins; nobody grants a role above
    their own). The email must be unused anywhere in the service (409)."""
    async with auditor.action("member.create", _event(tenant, str(body.email))) as event:
        created = await services.members.create(tenant, body)
        event.target = f"{created.id} {created.email} ({created.role})"
    await services.email_verification.first_link(created.email, auditor)
    return created


@router.get("/members/{member_id}", response_model=MemberPublic,
            responses=responses(NotFound))
async def get_member(member_id: MemberId, tenant: MemberReader, services: ServicesDep
                     ) -> MemberPublic:
    return member_public(await services.members.get(tenant, member_id))


@router.patch("/members/{member_id}", response_model=MemberPublic,
              responses=responses(NotFound, Conflict, PayloadTooLarge))
async def update_member(member_id: MemberId, body: MemberUpdate, tenant: MemberManager,
                        services: ServicesDep, auditor: CurrentAuditor) -> MemberPublic:
    """Change a member's name, role, manager, title, department or attributes. Only an
    owner changes an owner; the last active owner cannot be demoted (409); a manager must
    be an active member (404) and not one of the member's own reports (409)."""
    async with auditor.action("member.update", _event(tenant, member_id)):
        updated, former_role = await services.members.update(tenant, member_id, body)
    if former_role is not None:
        await auditor.record("member.role_change", "success", admin_id=tenant.member_id,
                             organization_id=tenant.organization_id,
                             target=f"{member_id} {former_role}->{updated.role}")
    return updated


@router.delete("/members/{member_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses=responses(NotFound, Conflict))
async def remove_member(member_id: MemberId, tenant: MemberManager, services: ServicesDep,
                        auditor: CurrentAuditor) -> Response:
    """Remove a member; their reports then report to the removed member's manager."""
    async with auditor.action("member.remove", _event(tenant, member_id)) as event:
        removed = await services.members.remove(tenant, member_id)
        event.target = f"{member_id} {removed['email']}"
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/members/{member_id}/suspend", response_model=MemberPublic,
             responses=responses(NotFound, Conflict))
async def suspend_member(member_id: MemberId, tenant: MemberManager, services: ServicesDep,
                         auditor: CurrentAuditor) -> MemberPublic:
    """Suspend a member: their tokens stop working at once, and logging in answers 403
    `member_suspended` until they are reactivated."""
    async with auditor.action("member.suspend", _event(tenant, member_id)):
        return await services.members.suspend(tenant, member_id)


@router.post("/members/{member_id}/reactivate", response_model=MemberPublic,
             responses=responses(NotFound, Conflict))
async def reactivate_member(member_id: MemberId, tenant: MemberManager, services: ServicesDep,
                            auditor: CurrentAuditor) -> MemberPublic:
    """Reactivate a suspended member, with the role they had; they log in again (tokens
    from before the suspension stay dead)."""
    async with auditor.action("member.reactivate", _event(tenant, member_id)):
        return await services.members.reactivate(tenant, member_id)


@router.get("/members/{member_id}/reports", response_model=ReportList,
            responses=responses(NotFound))
async def member_reports(member_id: MemberId, tenant: MemberReader, services: ServicesDep,
                         depth: Literal["1", "all"] = "1") -> ReportList:
    """Who reports to the member: directly (`depth=1`) or at any level (`depth=all`, at
    most 32 levels down)."""
    return await services.members.reports(tenant, member_id, all_levels=depth == "all")


@router.post("/ownership/transfer", response_model=MemberPublic,
             responses=responses(NotFound, Conflict))
async def transfer_ownership(body: OwnershipTransfer, tenant: OwnershipHolder,
                             services: ServicesDep, auditor: CurrentAuditor) -> MemberPublic:
    """The owner hands ownership to an active member and becomes an admin. Answers the
    new owner."""
    async with auditor.action("member.ownership_transfer", _event(tenant, body.member_id)):
        new_owner, _ = await services.members.transfer_ownership(tenant, body.member_id)
    return new_owner


@me_router.get("/me", response_model=MeView)
async def get_me(tenant: CurrentTenant, services: ServicesDep) -> MeView:
    """The calling member, with the address an email change of theirs waits on."""
    pending = await services.email_verification.pending_email(tenant.member)
    return MeView(**member_public(tenant.member).model_dump(), pending_email=pending)


@me_router.patch("/me", response_model=MeView,
                 responses=responses(Conflict, StepUpRequired,
                                     TooManyRequests))
async def update_me(body: MeUpdate, tenant: CurrentTenant, services: ServicesDep,
                    auditor: CurrentAuditor, step_up: StepUpDep) -> MeView:
    """Change your own name or title; your email or password only with `current_password`
    (else 401 `insufficient_user_authentication`; wrong: 403 `invalid_current_password`,
    counted as a failed login). A password change ends every earlier token. A new email
    must be free (409) and takes effect only once the link mailed to it is followed
    (`pending_email` until then; the old address gets a notice and stays the login)."""
    async with auditor.action("member.self_update", _event(tenant, tenant.member_id)):
        me = await services.members.update_me(tenant, body, step_up)
    if body.email is not None and me.pending_email is not None and (
            me.pending_email == str(body.email)):
        await record_email_change(auditor, tenant, me.pending_email)
    return me
