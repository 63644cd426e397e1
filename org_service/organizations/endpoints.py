from __future__ import annotations

from typing import Annotated

from bson import ObjectId
from fastapi import APIRouter, Header, status

from org_service.audit.service import AuditEvent
from org_service.deps import (
    CurrentAuditor,
    DeleteTargetDep,
    LifecycleTenant,
    ServicesDep,
    StepUpDep,
)
from org_service.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
    Unauthorized,
    responses,
)
from org_service.organizations.schemas import (
    IDEMPOTENCY_KEY_PATTERN,
    OrganizationCreate,
    OrganizationCreated,
    OrganizationDelete,
    OrganizationDeleted,
    OrganizationLookup,
    OrganizationPublic,
    OrganizationUpdate,
    OrganizationUpdated,
)
from org_service.organizations.service import DeleteTarget, idempotency_key
from org_service.security import HashingBusy
from org_service.strict_json import StrictJSONRoute
from org_service.tenancy import TenantContext
from org_service.verification.endpoints import record_email_change

router = APIRouter(prefix="/org", tags=["Organizations"], route_class=StrictJSONRoute)

IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", json_schema_extra={"pattern": IDEMPOTENCY_KEY_PATTERN},
    description="Replaying a key with the same body returns the first response; "
                "with another body: 422. 1-255 printable ASCII characters, bare or as a "
                "quoted string; another value is a 400")]


@router.post("/create", status_code=status.HTTP_201_CREATED, response_model=OrganizationCreated,
             responses=responses(BadRequest, Conflict, PayloadTooLarge, TooManyRequests))
async def create_organization(body: OrganizationCreate, services: ServicesDep,
                              auditor: CurrentAuditor, key: IdempotencyKey = None
                              ) -> OrganizationCreated:
    """Create an organization, its first admin and its own collection `org_<slug>`.

    Each create costs a password hash, so `CREATE_MAX_PER_ADDRESS` per client address per
    `CREATE_WINDOW_SECONDS` are served, 409s included; then 429 with Retry-After.

    A name a rename or delete has just given up is free once that operation has settled,
    so a create of it may wait up to `TENANT_REQUEST_TIMEOUT_MS` + 250 ms (3.25 s by
    default) instead of answering 409: requests that read the old name may still be
    writing, and their writes are folded in (or dropped) once none can be running."""
    async with auditor.action("organization.create",
                              AuditEvent(target=body.organization_name)) as event:
        # Refused before the hash, so a flood costs as little as possible: with the hash
        # queue full, before it is even counted.
        services.hasher.refuse_if_busy(check=False)
        admitted = await services.create_throttle.admit(auditor.info.client_address)
        try:
            created = await services.organizations.create(body, idempotency_key(key))
        except HashingBusy:
            await services.create_throttle.refund(admitted)  # 503 before any hash: not spent
            raise
        event.organization_id = created.id
    # The creator's email is verified by a link (once: a replayed create sends no more).
    await services.email_verification.first_link(created.admin_email, auditor)
    return created


@router.post("/get", response_model=OrganizationPublic, responses=responses(NotFound))
async def get_organization(body: OrganizationLookup, services: ServicesDep) -> OrganizationPublic:
    """Public details of an organization, looked up by name (or any name with its slug)."""
    return await services.organizations.get(body.organization_name)


@router.put("/update", response_model=OrganizationUpdated,
            responses=responses(Unauthorized, Forbidden, Conflict, TooManyRequests))
async def update_organization(body: OrganizationUpdate, tenant: LifecycleTenant,
                              services: ServicesDep, auditor: CurrentAuditor,
                              step_up: StepUpDep) -> OrganizationUpdated:
    """Rename the caller's organization (its collection moves with it) and/or change the
    admin's email or password. A password change revokes every earlier token. A new email
    must be free (409) and takes effect only once the link mailed to it is followed
    (`pending_email` until then; the old address gets a notice and stays the login).

    A credential change needs a token from a login within `CREDENTIAL_CHANGE_MAX_AGE_SECONDS`
    (else 401 `insufficient_user_authentication`) or the `current_password` (wrong: 403
    `invalid_current_password`, counted as a failed login: 429 past the login limits).

    Right after a rename or delete of this organization, or renaming to a name another one
    just gave up, this waits for that operation to settle: up to `TENANT_REQUEST_TIMEOUT_MS`
    + 250 ms (3.25 s by default). Requests that read the old name may still be writing; the
    earlier rename folds their writes in once no such request can be running."""
    async with auditor.action("organization.update", _event(tenant, body.old_organization_name)):
        updated = await services.organizations.update(tenant, body, step_up)
    if body.password is not None:
        await auditor.record("admin.credentials_change", "success", admin_id=tenant.member_id,
                             organization_id=tenant.organization_id, target="password")
    if updated.pending_email is not None:
        await record_email_change(auditor, tenant, updated.pending_email)
    return updated


@router.delete("/delete", response_model=OrganizationDeleted,
               responses=responses(Unauthorized, Forbidden, Conflict))
async def delete_organization(body: OrganizationDelete, target: DeleteTargetDep,
                              services: ServicesDep, auditor: CurrentAuditor
                              ) -> OrganizationDeleted:
    """Delete the caller's organization: its collection, its admins and itself. Repeating
    it with the same token answers the same 200 (for a day). It is gone at once for
    everyone (its name and its members' emails are free again); an operator can still
    restore it for `DELETION_GRACE_DAYS` (default 7), after which it is purged.

    Right after a rename this waits for the rename to settle: up to
    `TENANT_REQUEST_TIMEOUT_MS` + 250 ms (3.25 s by default). Requests that read the old
    name may still be writing; the rename folds their writes in once no such request can be
    running, and only then can the collection be dropped."""
    async with auditor.action("organization.delete", _delete_event(target,
                                                                   body.organization_name)):
        deleted = await services.organizations.delete(target, body.organization_name)
    # Its members are gone, which already ends their sessions; this marks them ended.
    await services.sessions.end_organization(ObjectId(deleted.id))
    return deleted


def _event(tenant: TenantContext, named: str) -> AuditEvent:
    # The target is the name the caller gave: for a refused attempt, the other organization.
    return AuditEvent(admin_id=tenant.member_id, organization_id=tenant.organization_id,
                      target=named)


def _delete_event(target: DeleteTarget, named: str) -> AuditEvent:
    if target.tenant is not None:
        return _event(target.tenant, named)
    op = target.finished or {}
    return AuditEvent(admin_id=op.get("admin_id"), organization_id=op.get("organization_id"),
                      target=named)
