"""The one home of request dependencies: the services built at startup, the tenant
context every tenant route depends on, the auditor of a request.

Only the endpoints (and the app) import this module; services and repositories get what
they need in their constructors (`org_service/main.py` builds them)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal, TypeVar

import pymongo
from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from org_service.admission import TenantAdmission
from org_service.audit.service import AuditLog, Auditor, request_info
from org_service.auth.credentials import StepUp
from org_service.auth.repository import LoginFailureRepository
from org_service.auth.service import AuthService
from org_service.auth.throttle import CreateThrottle, LoginThrottle
from org_service.config import Settings
from org_service.db import Document, Mongo, object_id
from org_service.errors import (
    Forbidden,
    MemberSuspended,
    PermissionDenied,
    SessionEnded,
    TenantBusy,
    Unauthorized,
    lifecycle_busy,
)
from org_service.invitations.service import InvitationService
from org_service.members.repository import ACTIVE as MEMBER_ACTIVE
from org_service.members.repository import MemberRepository
from org_service.members.service import MemberService
from org_service.organizations.lifecycle import DELETE, LifecycleManager
from org_service.organizations.repository import OrganizationRepository
from org_service.organizations.schemas import ACTIVE, BUSY
from org_service.organizations.service import DeleteTarget, OrganizationService
from org_service.organizations.window import RestoreWindow
from org_service.outbox.messages import Outbox
from org_service.outbox.sender import OutboxSender
from org_service.records.repository import by_id
from org_service.records.schemas import KIND_PATTERN
from org_service.records.service import RecordService
from org_service.recovery.service import PasswordResetService
from org_service.roles import Permission, allows
from org_service.security import PasswordHasher, TokenClaims, TokenCodec
from org_service.sessions.service import SessionService, session_has_ended
from org_service.tenancy import CollectionHints, Prefetched, TenantContext
from org_service.verification.service import EmailVerificationService


@dataclass(slots=True)
class Services:
    """What the lifespan builds once: services by their domain (what the endpoints call),
    repositories with a `_repository` suffix (what the tenant lookup and startup need)."""

    settings: Settings
    mongo: Mongo
    hasher: PasswordHasher
    tokens: TokenCodec
    organization_repository: OrganizationRepository
    member_repository: MemberRepository
    login_failure_repository: LoginFailureRepository
    lifecycle: LifecycleManager
    organizations: OrganizationService
    auth: AuthService
    members: MemberService
    sessions: SessionService
    login_throttle: LoginThrottle
    create_throttle: CreateThrottle
    audit: AuditLog
    records: RecordService
    collection_hints: CollectionHints
    admission: TenantAdmission
    invitations: InvitationService
    outbox: Outbox
    outbox_sender: OutboxSender
    password_resets: PasswordResetService
    window: RestoreWindow
    email_verification: EmailVerificationService


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


async def get_step_up(services: ServicesDep, auditor: CurrentAuditor) -> StepUp:
    """What a change of the caller's own email or password is held to."""
    return StepUp(
        max_age=timedelta(seconds=services.settings.CREDENTIAL_CHANGE_MAX_AGE_SECONDS),
        throttle=services.login_throttle, client_address=auditor.info.client_address)


StepUpDep = Annotated[StepUp, Depends(get_step_up)]

# -- the tenant context ----------------------------------------------------------------

bearer = HTTPBearer(auto_error=False, description="The access token from /admin/login")

Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
OrganizationHeader = Annotated[str | None, Header(
    alias="X-Organization-ID",
    description="Optional cross-check: must equal the organization of the token",
)]
Prefetch = Callable[[Request], Document | None]
F = TypeVar("F", bound=Callable[..., Any])


# What a tenant route needs: a permission of the role table, or only to be an active
# member acting on their own account (`SELF`).
SELF: Literal["self"] = "self"
Needs = Permission | Literal["self"]


def permit(tenant: TenantContext, needs: Needs) -> TenantContext:
    """The tenant context, if the member's role as the lookup just read it grants `needs`."""
    if needs != "self" and not allows(tenant.role, needs):
        raise PermissionDenied(f"Your role ({tenant.role}) does not permit this ({needs})")
    return tenant


def needs(permission: Needs) -> Callable[[F], F]:
    """Declare the permission a tenant dependency written as a function checks (the route
    guard test reads it)."""
    def mark(dependency: F) -> F:
        dependency.permission = permission  # type: ignore[attr-defined]
        return dependency
    return mark


class TenantBearer(HTTPBearer):
    """The bearer scheme (OpenAPI shows it as such) that also resolves the tenant context
    and checks the permission the route needs.

    One dependency where FastAPI would otherwise resolve five (credentials, services,
    auditor, header, context) at some 25 µs each on every tenant request. `prefetch` names
    a read of the tenant's collection to make in the tenant lookup's round trip."""

    def __init__(self, permission: Needs, prefetch: Prefetch | None = None) -> None:
        super().__init__(auto_error=False, scheme_name=bearer.scheme_name,
                         description=bearer.model.description)
        self.permission = permission
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
            tenant = await resolve_tenant(request, services, credentials, x_organization_id,
                                          prefetch)
        return permit(tenant, self.permission)


async def resolve_tenant(request: Request, services: Services,
                         credentials: HTTPAuthorizationCredentials | None,
                         x_organization_id: str | None,
                         prefetch: Document | None = None) -> TenantContext:
    """Token -> member -> organization, checked; `prefetch` is a query on the tenant's
    collection to run in the same round trip (see CollectionHints)."""
    # Taken before the organization is read: if it is not marked "renaming" yet, the rename
    # that marks it next settles only after this deadline has passed.
    write_deadline = time.monotonic() + services.settings.TENANT_REQUEST_TIMEOUT_MS / 1000
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Missing bearer token")
    claims = services.tokens.decode(credentials.credentials)
    admin_id, session_id = object_id(claims.admin_id), object_id(claims.session_id)
    hint = services.collection_hints.get(claims.organization_id) if prefetch else None
    found = admin_id and session_id and await services.member_repository.with_organization(
        admin_id, also=(hint, prefetch) if hint and prefetch else None)
    if not found or str(found.member["organization_id"]) != claims.organization_id:
        raise Unauthorized()
    if found.member.get("state", MEMBER_ACTIVE) != MEMBER_ACTIVE:
        raise MemberSuspended()
    # A changed password or email, or a suspension, bumps the member's token version: older
    # tokens die at once.
    if found.member.get("token_version") != claims.version:
        raise Unauthorized()
    # Logged out, revoked or ended for a reused refresh token (a session past its end has
    # no access token left: none outlives it).
    if session_has_ended(found.member, session_id):
        raise SessionEnded()
    organization = found.organization
    if organization is not None and organization["state"] in BUSY:
        raise TenantBusy(str(organization["_id"]))
    if organization is None or organization["state"] != ACTIVE:
        raise Unauthorized()
    collection_name = organization["collection_name"]
    services.collection_hints.remember(claims.organization_id, collection_name)
    prefetched = (Prefetched(collection_name, prefetch, found.also)
                  if prefetch and hint == collection_name else None)
    tenant = TenantContext(claims=claims, member=found.member, organization=organization,
                           write_deadline=write_deadline, prefetched=prefetched)
    request.state.tenant = tenant
    services.admission.enter(request.scope.setdefault("state", {}), claims.organization_id)
    await check_organization_header(request, services, x_organization_id, claims,
                                    tenant.member_id)
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


# Every tenant route depends on one of these (or on one of the lifecycle ones below): the
# tenant context, checked for the permission the route needs.
tenant_context = TenantBearer(SELF)
CurrentTenant = Annotated[TenantContext, Depends(tenant_context)]
RecordReader = Annotated[TenantContext, Depends(TenantBearer("records:read"))]
RecordWriter = Annotated[TenantContext, Depends(TenantBearer("records:write"))]
IndexManager = Annotated[TenantContext, Depends(TenantBearer("indexes:manage"))]
AuditReader = Annotated[TenantContext, Depends(TenantBearer("audit:read"))]
MemberReader = Annotated[TenantContext, Depends(TenantBearer("members:read"))]
MemberManager = Annotated[TenantContext, Depends(TenantBearer("members:manage"))]
OwnershipHolder = Annotated[TenantContext, Depends(TenantBearer("org:transfer"))]
PolicyManager = Annotated[TenantContext, Depends(TenantBearer("records:policy"))]
StatsReader = Annotated[TenantContext, Depends(TenantBearer("stats:read"))]
# Owners and admins: every invitation of the organization; managers: their own (the
# service narrows what a role without invitations:manage sees and changes).
Inviter = Annotated[TenantContext, Depends(TenantBearer("invitations:create"))]


# -- rename and delete ------------------------------------------------------------------

async def _lifecycle_tenant(request: Request, services: Services, credentials: Credentials,
                            x_organization_id: str | None, permission: Permission
                            ) -> TenantContext:
    try:
        tenant = await resolve_tenant(request, services, credentials, x_organization_id)
    except TenantBusy as busy:
        organization_id = object_id(busy.organization_id)
        if organization_id is None or not await services.lifecycle.recover_if_abandoned(
                organization_id):
            raise lifecycle_busy() from None
        tenant = await resolve_tenant(request, services, credentials, x_organization_id)
    return permit(tenant, permission)


@needs("org:update")
async def lifecycle_tenant(
    request: Request,
    services: ServicesDep,
    credentials: Credentials,
    x_organization_id: OrganizationHeader = None,
) -> TenantContext:
    return await _lifecycle_tenant(request, services, credentials, x_organization_id,
                                   "org:update")


@needs("org:delete")
async def delete_target(
    request: Request,
    services: ServicesDep,
    credentials: Credentials,
    x_organization_id: OrganizationHeader = None,
) -> DeleteTarget:
    try:
        return DeleteTarget(tenant=await _lifecycle_tenant(
            request, services, credentials, x_organization_id, "org:delete"))
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


tenant_reading_record = TenantBearer("records:read", prefetch=record_in_path)
TenantReadingRecord = Annotated[TenantContext, Depends(tenant_reading_record)]
