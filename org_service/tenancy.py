"""The tenant context: the only way a route learns which organization it acts for.

It comes from the verified token alone (token -> admin -> organization, each checked),
never from a body, a path or a header.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

import pymongo
from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from org_service.audit.service import Auditor, CurrentAuditor
from org_service.db import Document
from org_service.deps import Services, get_services
from org_service.errors import Forbidden, TenantBusy, Unauthorized
from org_service.organizations.repository import ACTIVE, RENAMING
from org_service.security import TokenClaims

bearer = HTTPBearer(auto_error=False, description="The access token from /admin/login")


@dataclass(frozen=True, slots=True)
class TenantContext:
    claims: TokenClaims
    admin: Document
    organization: Document
    # Monotonic time by which this request's writes to the tenant collection must be over.
    write_deadline: float = math.inf

    @contextmanager
    def write_window(self) -> Iterator[None]:
        """Every write to the tenant collection runs inside this window. A rename waits
        TENANT_REQUEST_TIMEOUT_MS after marking the organization before it settles, so a
        request that resolved the old collection name can no longer write there by then
        (PyMongo's client-side timeout also bounds the server's work with maxTimeMS)."""
        remaining = self.write_deadline - time.monotonic()
        if remaining <= 0:
            raise TenantBusy(self.organization_id)
        with pymongo.timeout(remaining):
            yield

    @property
    def organization_id(self) -> str:
        return str(self.organization["_id"])

    @property
    def admin_id(self) -> str:
        return str(self.admin["_id"])

    @property
    def collection_name(self) -> str:
        return str(self.organization["collection_name"])


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
OrganizationHeader = Annotated[str | None, Header(
    alias="X-Organization-ID",
    description="Optional cross-check: must equal the organization of the token",
)]


async def get_tenant_context(
    request: Request,
    services: Annotated[Services, Depends(get_services)],
    credentials: Credentials,
    auditor: CurrentAuditor,
    x_organization_id: OrganizationHeader = None,
) -> TenantContext:
    with pymongo.timeout(services.settings.TENANT_REQUEST_TIMEOUT_MS / 1000):
        return await resolve_tenant(request, services, credentials, auditor, x_organization_id)


async def resolve_tenant(request: Request, services: Services,
                         credentials: HTTPAuthorizationCredentials | None, auditor: Auditor,
                         x_organization_id: str | None) -> TenantContext:
    # Taken before the organization is read: if it is not marked "renaming" yet, the rename
    # that marks it next settles only after this deadline has passed.
    write_deadline = time.monotonic() + services.settings.TENANT_REQUEST_TIMEOUT_MS / 1000
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Missing bearer token")
    claims = services.tokens.decode(credentials.credentials)
    admin = await services.admins.get(claims.admin_id)
    # A changed password or email bumps the admin's token version: older tokens die at once.
    if (admin is None or admin.get("token_version") != claims.version
            or str(admin["organization_id"]) != claims.organization_id):
        raise Unauthorized()
    organization = await services.organizations.get(admin["organization_id"], active_only=False)
    if organization is not None and organization["state"] == RENAMING:
        raise TenantBusy(str(organization["_id"]))
    if organization is None or organization["state"] != ACTIVE:
        raise Unauthorized()
    tenant = TenantContext(claims=claims, admin=admin, organization=organization,
                           write_deadline=write_deadline)
    request.state.tenant = tenant
    await check_organization_header(auditor, x_organization_id, claims, tenant.admin_id)
    return tenant


async def check_organization_header(auditor: Auditor, x_organization_id: str | None,
                                    claims: TokenClaims, admin_id: str) -> None:
    """The optional X-Organization-ID must name the token's organization; a mismatch is a
    cross-tenant attempt, refused and audited."""
    if x_organization_id is not None and x_organization_id != claims.organization_id:
        await auditor.record("tenant.header_mismatch", "denied", admin_id=admin_id,
                             organization_id=claims.organization_id, target=x_organization_id,
                             reason=Forbidden.code)
        raise Forbidden("X-Organization-ID does not match the organization of the token")


CurrentTenant = Annotated[TenantContext, Depends(get_tenant_context)]
