"""The tenant context of a record read by id, with the record read in the same round trip
as the token's admin and organization (the commonest tenant request costs one command)."""

from __future__ import annotations

import re
from typing import Annotated

import pymongo
from fastapi import Depends, Request

from org_service.audit.service import CurrentAuditor
from org_service.deps import Services, get_services
from org_service.organizations.repository import object_id
from org_service.records.repository import by_id
from org_service.records.schemas import KIND_PATTERN
from org_service.tenancy import Credentials, OrganizationHeader, TenantContext, resolve_tenant

KIND = re.compile(KIND_PATTERN)


async def tenant_reading_record(
    request: Request,
    services: Annotated[Services, Depends(get_services)],
    credentials: Credentials,
    auditor: CurrentAuditor,
    x_organization_id: OrganizationHeader = None,
) -> TenantContext:
    # The raw path parameters, not validated ones: the token is checked before the path (a
    # caller without a valid token learns nothing of it), so a bad kind or id only means
    # nothing to prefetch, and the route's own validation answers for it afterwards.
    kind, oid = request.path_params.get("kind"), object_id(request.path_params.get("record_id"))
    prefetch = by_id(kind, oid) if oid and isinstance(kind, str) and KIND.fullmatch(kind) else None
    with pymongo.timeout(services.settings.TENANT_REQUEST_TIMEOUT_MS / 1000):
        return await resolve_tenant(request, services, credentials, auditor, x_organization_id,
                                    prefetch=prefetch)


TenantReadingRecord = Annotated[TenantContext, Depends(tenant_reading_record)]
