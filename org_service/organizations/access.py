"""The tenant context of rename and delete, which must also work around a lifecycle
operation: one abandoned half-way (its owner died) is finished first, one in flight makes
the second rename or delete a 409, and a delete that already happened is answered again."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from org_service.deps import Services, get_services
from org_service.errors import Conflict, TenantBusy, Unauthorized
from org_service.organizations.lifecycle import DELETE
from org_service.organizations.repository import object_id
from org_service.organizations.service import DeleteTarget
from org_service.tenancy import (
    Credentials,
    OrganizationHeader,
    TenantContext,
    check_organization_header,
    resolve_tenant,
)


async def lifecycle_tenant(
    request: Request,
    services: Annotated[Services, Depends(get_services)],
    credentials: Credentials,
    x_organization_id: OrganizationHeader = None,
) -> TenantContext:
    try:
        return await resolve_tenant(request, services, credentials, x_organization_id)
    except TenantBusy as busy:
        organization_id = object_id(busy.organization_id)
        if organization_id is None or not await services.lifecycle.recover_if_abandoned(
                organization_id):
            raise Conflict("Another rename or delete of this organization is in progress"
                           ) from None
    return await resolve_tenant(request, services, credentials, x_organization_id)


async def delete_target(
    request: Request,
    services: Annotated[Services, Depends(get_services)],
    credentials: Credentials,
    x_organization_id: OrganizationHeader = None,
) -> DeleteTarget:
    try:
        return DeleteTarget(tenant=await lifecycle_tenant(
            request, services, credentials, x_organization_id))
    except Unauthorized:
        if credentials is None:
            raise
        # The token is still genuine; its admin is gone because this delete (or an earlier
        # attempt of it) already ran. The journal remembers whose delete it was.
        claims = services.tokens.decode(credentials.credentials)
        organization_id = object_id(claims.organization_id)
        op = (await services.lifecycle.journal.for_organization(organization_id)
              if organization_id is not None else None)
        if (op is None or op["kind"] != DELETE or str(op["admin_id"]) != claims.admin_id
                or op["admin_version"] != claims.version):
            raise
    await check_organization_header(request, services, x_organization_id, claims,
                                    claims.admin_id)
    return DeleteTarget(finished=op)


LifecycleTenant = Annotated[TenantContext, Depends(lifecycle_tenant)]
DeleteTargetDep = Annotated[DeleteTarget, Depends(delete_target)]
