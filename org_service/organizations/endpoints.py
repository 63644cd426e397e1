from __future__ import annotations

from fastapi import APIRouter, status

from org_service.audit.service import AuditEvent, CurrentAuditor
from org_service.deps import ServicesDep
from org_service.errors import (
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    responses,
)
from org_service.organizations.schemas import (
    OrganizationCreate,
    OrganizationCreated,
    OrganizationDelete,
    OrganizationDeleted,
    OrganizationLookup,
    OrganizationPublic,
    OrganizationUpdate,
)
from org_service.strict_json import StrictJSONRoute
from org_service.tenancy import CurrentTenant, TenantContext

router = APIRouter(prefix="/org", tags=["Organizations"], route_class=StrictJSONRoute)


@router.post("/create", status_code=status.HTTP_201_CREATED, response_model=OrganizationCreated,
             responses=responses(Conflict, PayloadTooLarge))
async def create_organization(body: OrganizationCreate, services: ServicesDep,
                              auditor: CurrentAuditor) -> OrganizationCreated:
    """Create an organization, its first admin and its own collection `org_<slug>`."""
    async with auditor.action("organization.create",
                              AuditEvent(target=body.organization_name)) as event:
        created = await services.organization_service.create(body)
        event.organization_id = created.id
    return created


@router.post("/get", response_model=OrganizationPublic, responses=responses(NotFound))
async def get_organization(body: OrganizationLookup, services: ServicesDep) -> OrganizationPublic:
    """Public details of an organization, looked up by name (or any name with its slug)."""
    return await services.organization_service.get(body.organization_name)


@router.put("/update", response_model=OrganizationPublic,
            responses=responses(Unauthorized, Forbidden, Conflict))
async def update_organization(body: OrganizationUpdate, tenant: CurrentTenant,
                              services: ServicesDep, auditor: CurrentAuditor
                              ) -> OrganizationPublic:
    """Rename the caller's organization (its collection moves with it) and/or change the
    admin's email or password; a credential change revokes every earlier token."""
    async with auditor.action("organization.update", _event(tenant, body.old_organization_name)):
        updated = await services.organization_service.update(tenant, body)
    changed = [name for name in ("email", "password") if getattr(body, name) is not None]
    if changed:
        await auditor.record("admin.credentials_change", "success", admin_id=tenant.admin_id,
                             organization_id=tenant.organization_id, target=",".join(changed))
    return updated


@router.delete("/delete", response_model=OrganizationDeleted,
               responses=responses(Unauthorized, Forbidden))
async def delete_organization(body: OrganizationDelete, tenant: CurrentTenant,
                              services: ServicesDep, auditor: CurrentAuditor
                              ) -> OrganizationDeleted:
    """Delete the caller's organization: its collection, its admins and itself."""
    async with auditor.action("organization.delete", _event(tenant, body.organization_name)):
        return await services.organization_service.delete(tenant, body.organization_name)


def _event(tenant: TenantContext, named: str) -> AuditEvent:
    # The target is the name the caller gave: for a refused attempt, the other organization.
    return AuditEvent(admin_id=tenant.admin_id, organization_id=tenant.organization_id,
                      target=named)
