"""The tenant context: the only way a route learns which organization it acts for.

It comes from the verified token alone (token -> admin -> organization, each checked),
never from a body, a path or a header.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

import pymongo
from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from org_service.audit.service import Auditor, request_info
from org_service.db import Document
from org_service.deps import Services
from org_service.errors import DeadlineExceeded, Forbidden, TenantBusy, Unauthorized
from org_service.organizations.repository import ACTIVE, RENAMING, object_id
from org_service.security import TokenClaims

bearer = HTTPBearer(auto_error=False, description="The access token from /admin/login")


class CollectionHints:
    """The collection each organization's records were last seen in, so that a record read
    can ride along with the tenant lookup (one round trip instead of two). Only ever a
    hint: the lookup returns the organization's collection of the moment, and a read made
    against a stale hint (the organization was renamed meanwhile) is thrown away."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._names: dict[str, str] = {}

    def get(self, organization_id: str) -> str | None:
        return self._names.get(organization_id)

    def remember(self, organization_id: str, collection_name: str) -> None:
        if self._names.get(organization_id) == collection_name:
            return
        if len(self._names) >= self.capacity:
            del self._names[next(iter(self._names))]  # the oldest; a miss only costs a read
        self._names[organization_id] = collection_name


class Prefetched:
    """One read of the tenant's collection made along with the tenant lookup; served once,
    and only to the same read of the same collection."""

    __slots__ = ("_served", "collection", "document", "query")

    def __init__(self, collection: str, query: Document, document: Document | None) -> None:
        self.collection = collection
        self.query = query
        self.document = document
        self._served = False

    def serve(self, collection: str, query: Document) -> tuple[bool, Document | None]:
        if self._served or collection != self.collection or query != self.query:
            return False, None
        self._served = True
        return True, self.document


@dataclass(frozen=True, slots=True)
class TenantContext:
    claims: TokenClaims
    admin: Document
    organization: Document
    # Monotonic time by which this request's writes to the tenant collection must be over.
    write_deadline: float = math.inf
    prefetched: Prefetched | None = None

    @contextmanager
    def write_window(self) -> Iterator[None]:
        """Every write to the tenant collection runs inside this window. A rename waits
        TENANT_REQUEST_TIMEOUT_MS after marking the organization before it settles, so a
        request that resolved the old collection name can no longer write there by then
        (PyMongo's client-side timeout also bounds the server's work with maxTimeMS)."""
        remaining = self.write_deadline - time.monotonic()
        if remaining <= 0:
            # No rename need be running: the request was just slow. Say what happened.
            raise DeadlineExceeded()
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

    async def __call__(
        self, request: Request, x_organization_id: OrganizationHeader = None,
    ) -> TenantContext:
        services: Services = request.app.state.services
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
    found = admin_id and await services.admins.with_organization(
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
    prefetched = (Prefetched(hint, prefetch, found.also)
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
