"""The one home of request dependencies: the services built at startup, the tenant
context every tenant route depends on, the auditor of a request.

Only the endpoints (and the app) import this module; services and repositories get what
they need in their constructors (`org_service/main.py` builds them)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import pymongo
from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from org_service.admins.repository import AdminRepository, LoginFailureRepository
from org_service.admins.service import AdminService
from org_service.admins.throttle import CreateThrottle, LoginThrottle
from org_service.admission import TenantAdmission
from org_service.audit.service import AuditLog, Auditor, request_info
from org_service.config import Settings
from org_service.db import Document, Mongo, object_id
from org_service.errors import Forbidden, TenantBusy, Unauthorized, lifecycle_busy
from org_service.organizations.lifecycle import DELETE, LifecycleManager
from org_service.organizations.repository import OrganizationRepository
from org_service.organizations.schemas import ACTIVE, RENAMING
from org_service.organizations.service import DeleteTarget, OrganizationService
from org_service.records.repository import by_id
from org_service.records.schemas import KIND_PATTERN
from org_service.records.service import RecordService
from org_service.security import PasswordHasher, TokenClaims, TokenCodec
from org_service.tenancy import CollectionHints, Prefetched, TenantContext


@dataclass(slots=True)
class Services:
    """What the lifespan builds once: services by their domain (what the endpoints call),
    repositories with a `_repository` suffix (what the tenant lookup and startup need)."""

    settings: Settings
    mongo: Mongo
    hasher: PasswordHasher
    tokens: TokenCodec
    organization_repository: OrganizationRepository
    admin_repository: AdminRepository
    login_failure_repository: LoginFailureRepository
    lifecycle: LifecycleManager
    organizations: OrganizationService
    admins: AdminService
    login_throttle: LoginThrottle
    create_throttle: CreateThrottle
    audit: AuditLog
    records: RecordService
    collection_hints: CollectionHints
    admission: TenantAdmission


async def get_services(request: Request) -> Services:
    # async although it never awaits: FastAPI runs a plain `def` dependency in the thread
    # pool, a thread handoff on every request for one attribute read.
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_auditor(request: Request, services: ServicesDep) -> Auditor:
    # async so FastAPI calls it on the event loop, not through a thread-pool handoff.
    return Auditor(services.audit, request_info(request))


CurrentAuditor = Annotated[Auditor, Depends(get_auditor)]

# -- the tenant context ----------------------------------------------------------------

bearer = HTTPBearer(auto_error=False, description="The access token from /admin/login")

Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
OrganizationHeader = Annotated[str | None, Header(
    alias="X-Organization-ID",
    description="Optional cross-check: must equal the organization of the token",
)]
Prefetch = Callable[[Request], Document | None]


class TenantBearer(HTTPBearer):
    """The bearer scheme (OpenAPI shows it as such) that also resolves the tenant context.

    One dependency where FastAPI would otherwise resolve five (credentials, services,
    auditor, header, context) at some 25 µs each on every tenant request. `prefetch` names
    a read of the tenant's collection to make in the tenant lookup's round trip."""

    def __init__(self, prefetch: Prefetch | None = None) -> None:
        super().__init__(auto_error=False, scheme_name=bearer.scheme_name,
                         description=bearer.model.description)
        self.prefetch = prefetch

    # Not the base's signature on purpose: FastAPI reads this one to inject the header, and
    # the scheme is the base's only so that OpenAPI shows the route's bearer security.
    async def __call__(  # type: ignore[override]
        self, request: Request, x_organization_id: OrganizationHeader = None,
    ) -> TenantContext:
        services = await get_services(request)
        credentials = await super().__call__(request)
        prefetch = self.prefetch(request) if self.prefetch is not None else None
        with pymongo.timeout(services.settings.TENANT_REQUEST_TIMEOUT_MS / 1000):
            return await resolve_tenant(request, services, credentials, x_organization_id,
                                        prefetch)


async def resolve_tenant(request: Request, services: Services,
                         credentials: HTTPAuthorizationCredentials | None,
                         x_organization_id: str | None,
                         prefetch: Document | None = None) -> TenantContext:
    """Token -> admin -> organization, checked; `prefetch` is a query on the tenant's
    collection to run in the same round trip (see CollectionHints)."""
    # Taken before the organization is read: if it is not marked "renaming" yet, the rename
    # that marks it next settles only after this deadline has passed.
    write_deadline = time.monotonic() + services.settings.TENANT_REQUEST_TIMEOUT_MS / 1000
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Missing bearer token")
    claims = services.tokens.decode(credentials.credentials)
    admin_id = object_id(claims.admin_id)
    hint = services.collection_hints.get(claims.organization_id) if prefetch else None
    found = admin_id and await services.admin_repository.with_organization(
        admin_id, also=(hint, prefetch) if hint and prefetch else None)
    # A changed password or email bumps the admin's token version: older tokens die at once.
    if (not found or found.admin.get("token_version") != claims.version
            or str(found.admin["organization_id"]) != claims.organization_id):
        raise Unauthorized()
    organization = found.organization
    if organization is not None and organization["state"] == RENAMING:
        raise TenantBusy(str(organization["_id"]))
    if organization is None or organization["state"] != ACTIVE:
        raise Unauthorized()
    collection_name = organization["collection_name"]
    services.collection_hints.remember(claims.organization_id, collection_name)
    prefetched = (Prefetched(collection_name, prefetch, found.also)
                  if prefetch and hint == collection_name else None)
    tenant = TenantContext(claims=claims, admin=found.admin, organization=organization,
                           write_deadline=write_deadline, prefetched=prefetched)
    request.state.tenant = tenant
    services.admission.enter(request.scope.setdefault("state", {}), claims.organization_id)
    await check_organization_header(request, services, x_organization_id, claims,
                                    tenant.admin_id)
    return tenant


async def check_organization_header(request: Request, services: Services,
                                    x_organization_id: str | None, claims: TokenClaims,
                                    admin_id: str) -> None:
    """The optional X-Organization-ID must name the token's organization; a mismatch is a
    cross-tenant attempt, refused and audited."""
    if x_organization_id is not None and x_organization_id != claims.organization_id:
        auditor = Auditor(services.audit, request_info(request))
        await auditor.record("tenant.header_mismatch", "denied", admin_id=admin_id,
                             organization_id=claims.organization_id, target=x_organization_id,
                             reason=Forbidden.code)
        raise Forbidden("X-Organization-ID does not match the organization of the token")


# The general tenant context: every tenant route depends on it or on one built the same way.
tenant_context = TenantBearer()
CurrentTenant = Annotated[TenantContext, Depends(tenant_context)]


# -- rename and delete ------------------------------------------------------------------

async def lifecycle_tenant(
    request: Request,
    services: ServicesDep,
    credentials: Credentials,
    x_organization_id: OrganizationHeader = None,
) -> TenantContext:
    try:
        return await resolve_tenant(request, services, credentials, x_organization_id)
    except TenantBusy as busy:
        organization_id = object_id(busy.organization_id)
        if organization_id is None or not await services.lifecycle.recover_if_abandoned(
                organization_id):
            raise lifecycle_busy() from None
    return await resolve_tenant(request, services, credentials, x_organization_id)


async def delete_target(
    request: Request,
    services: ServicesDep,
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


# -- a record read by id, prefetched with the tenant lookup ------------------------------

KIND = re.compile(KIND_PATTERN)


def record_in_path(request: Request) -> Document | None:
    """The read of GET /org/records/{kind}/{record_id}, from the raw path parameters.

    Not the validated ones: the token is checked before the path (a caller without a valid
    token learns nothing of it), so a bad kind or id only means nothing to prefetch, and the
    route's own validation answers for it afterwards."""
    kind, oid = request.path_params.get("kind"), object_id(request.path_params.get("record_id"))
    return by_id(kind, oid) if oid and isinstance(kind, str) and KIND.fullmatch(kind) else None


tenant_reading_record = TenantBearer(prefetch=record_in_path)
TenantReadingRecord = Annotated[TenantContext, Depends(tenant_reading_record)]
