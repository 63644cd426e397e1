"""The tenant context: which organization a request acts for, and what it may do there.

Resolved from the verified token alone (token -> member -> organization, each checked) by
`org_service/deps.py`, never from a body, a path or a header.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pymongo

from org_service.db import Document
from org_service.errors import DeadlineExceeded
from org_service.security import TokenClaims


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
    member: Document  # as the tenant lookup read it: role and state of this moment
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
    def member_id(self) -> str:
        return str(self.member["_id"])

    @property
    def role(self) -> str:
        return str(self.member["role"])

    @property
    def collection_name(self) -> str:
        return str(self.organization["collection_name"])
