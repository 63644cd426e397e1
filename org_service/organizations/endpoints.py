from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, status

from org_service.deps import ServicesDep
from org_service.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    responses,
)
from org_service.organizations.access import DeleteTargetDep, LifecycleTenant
from org_service.organizations.schemas import (
    OrganizationCreate,
    OrganizationCreated,
    OrganizationDelete,
    OrganizationDeleted,
    OrganizationLookup,
    OrganizationPublic,
    OrganizationUpdate,
)
from org_service.organizations.service import idempotency_key
from org_service.strict_json import StrictJSONRoute

router = APIRouter(prefix="/org", tags=["Organizations"], route_class=StrictJSONRoute)


@router.post("/create", status_code=status.HTTP_201_CREATED, response_model=OrganizationCreated,
             responses=responses(BadRequest, Conflict, PayloadTooLarge))
async def create_organization(
    body: OrganizationCreate, services: ServicesDep,
    key: Annotated[str | None, Header(
        alias="Idempotency-Key",
        description="Replaying a key with the same body returns the first response; "
                    "with another body: 422")] = None,
) -> OrganizationCreated:
    """Create an organization, its first admin and its own collection `org_<slug>`."""
    return await services.organization_service.create(body, idempotency_key(key))


@router.post("/get", response_model=OrganizationPublic, responses=responses(NotFound))
async def get_organization(body: OrganizationLookup, services: ServicesDep) -> OrganizationPublic:
    """Public details of an organization, looked up by name (or any name with its slug)."""
    return await services.organization_service.get(body.organization_name)


@router.put("/update", response_model=OrganizationPublic,
            responses=responses(Unauthorized, Forbidden, Conflict))
async def update_organization(body: OrganizationUpdate, tenant: LifecycleTenant,
                              services: ServicesDep) -> OrganizationPublic:
    """Rename the caller's organization (its collection moves with it) and/or change the
    admin's email or password; a credential change revokes every earlier token."""
    return await services.organization_service.update(tenant, body)


@router.delete("/delete", response_model=OrganizationDeleted,
               responses=responses(Unauthorized, Forbidden))
async def delete_organization(body: OrganizationDelete, target: DeleteTargetDep,
                              services: ServicesDep) -> OrganizationDeleted:
    """Delete the caller's organization: its collection, its admins and itself. Repeating
    it with the same token answers the same 200 (for a day)."""
    return await services.organization_service.delete(target, body.organization_name)
