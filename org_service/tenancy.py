"""The tenant context: the only way a route learns which organization it acts for.

It comes from the verified token alone (token -> admin -> organization, each checked),
never from a body, a path or a header.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from org_service.audit.service import Auditor, get_auditor
from org_service.db import Document
from org_service.deps import Services, get_services
from org_service.errors import Forbidden, Unauthorized
from org_service.security import TokenClaims

bearer = HTTPBearer(auto_error=False, description="The access token from /admin/login")


@dataclass(frozen=True, slots=True)
class TenantContext:
    claims: TokenClaims
    admin: Document
    organization: Document

    @property
    def organization_id(self) -> str:
        return str(self.organization["_id"])

    @property
    def admin_id(self) -> str:
        return str(self.admin["_id"])

    @property
    def collection_name(self) -> str:
        return str(self.organization["collection_name"])


async def get_tenant_context(
    request: Request,
    services: Annotated[Services, Depends(get_services)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    auditor: Annotated[Auditor, Depends(get_auditor)],
    x_organization_id: Annotated[str | None, Header(
        alias="X-Organization-ID",
        description="Optional cross-check: must equal the organization of the token",
    )] = None,
) -> TenantContext:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Missing bearer token")
    claims = services.tokens.decode(credentials.credentials)
    admin = await services.admins.get(claims.admin_id)
    # A changed password or email bumps the admin's token version: older tokens die at once.
    if (admin is None or admin.get("token_version") != claims.version
            or str(admin["organization_id"]) != claims.organization_id):
        raise Unauthorized()
    organization = await services.organizations.get(admin["organization_id"])
    if organization is None:
        raise Unauthorized()
    tenant = TenantContext(claims=claims, admin=admin, organization=organization)
    request.state.tenant = tenant
    if x_organization_id is not None and x_organization_id != claims.organization_id:
        await auditor.record("tenant.header_mismatch", "denied", admin_id=tenant.admin_id,
                             organization_id=tenant.organization_id, target=x_organization_id,
                             reason=Forbidden.code)
        raise Forbidden("X-Organization-ID does not match the organization of the token")
    return tenant


CurrentTenant = Annotated[TenantContext, Depends(get_tenant_context)]
