"""The audit trail: who did what to which organization, from where, and how it ended.

Entries carry names, ids and error codes only: never a password, a hash or a token.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from bson import ObjectId
from fastapi import Request
from pymongo.errors import PyMongoError

from org_service.audit.repository import AuditRepository
from org_service.audit.schemas import AuditAction, AuditEntry, AuditOutcome, AuditPage
from org_service.db import Document, object_id, utcnow
from org_service.errors import Forbidden, as_service_error
from org_service.models import email_key
from org_service.observability import accepted_request_id
from org_service.pagination import CursorCodec, Pager, SortOrder

log = logging.getLogger(__name__)
TARGET_MAX = 200
# Refused attempts that anyone can repeat at will without being anybody: logins and creates
# (public routes) and a wrong X-Organization-ID (refused before anything happens). Identical
# ones within a window are one entry with a count, so a flood cannot grow the trail by one
# document per request. What an authenticated admin did (update, delete, credential change,
# even when refused) and every success stays one entry per event.
COLLAPSIBLE: frozenset[tuple[AuditAction, AuditOutcome]] = frozenset({
    ("admin.login", "failure"),
    ("admin.login", "throttled"),
    ("organization.create", "failure"),
    ("organization.create", "throttled"),
    ("tenant.header_mismatch", "denied"),
    ("invitation.accept", "failure"),
    ("password_reset.request", "throttled"),
    ("password_reset.complete", "failure"),
    ("email_verification.send", "throttled"),
    ("email_verification.confirm", "failure"),
})


@dataclass(frozen=True, slots=True)
class RequestInfo:
    client_address: str | None
    request_id: str
    # Shown with a session (GET /me/sessions), so a member can tell their devices apart.
    user_agent: str | None = None


USER_AGENT_MAX = 256


def request_info(request: Request) -> RequestInfo:
    # The observability middleware has already chosen the id for this request (and echoed it).
    request_id = getattr(request.state, "request_id", None) or accepted_request_id(
        request.headers.get("X-Request-ID"))
    # Behind a reverse proxy this is the proxy unless uvicorn runs with --proxy-headers.
    address = request.client.host if request.client else None
    user_agent = request.headers.get("User-Agent")
    return RequestInfo(client_address=address, request_id=str(request_id),
                       user_agent=user_agent[:USER_AGENT_MAX] if user_agent else None)


def _public(doc: Document) -> AuditEntry:
    return AuditEntry(
        id=str(doc["_id"]),
        at=doc["at"],
        action=doc["action"],
        outcome=doc["outcome"],
        admin_id=str(doc["admin_id"]) if doc.get("admin_id") else None,
        organization_id=str(doc["organization_id"]) if doc.get("organization_id") else None,
        target=doc.get("target"),
        reason=doc.get("reason"),
        client_address=doc.get("client_address"),
        request_id=doc["request_id"],
        # Entries from before collapsing existed have neither: they were single events.
        count=doc.get("count", 1),
        last_at=doc.get("last_at") or doc["at"],
    )


NEWEST_FIRST = SortOrder(("_id",), direction=-1)


def _collapse_key(entry: Document, bucket: int) -> str:
    """The identity of a collapsible event within one window, as a short digest."""
    target = entry["target"]
    if entry["action"] == "admin.login" and target is not None:
        target = email_key(target)  # "A@x.com" and "a@x.com" are one account
    identity = [entry["action"], entry["outcome"], entry["reason"], entry["client_address"],
                target, str(entry["admin_id"]), str(entry["organization_id"]), bucket]
    return hashlib.blake2b(json.dumps(identity).encode("utf-8", "surrogatepass"),
                           digest_size=16).hexdigest()


def new_entry(info: RequestInfo, action: AuditAction, outcome: AuditOutcome, *,
              at: datetime, admin_id: str | ObjectId | None = None,
              organization_id: str | ObjectId | None = None, target: str | None = None,
              reason: str | None = None, entry_id: ObjectId | None = None) -> Document:
    """An audit entry as stored (before collapsing adds its count)."""
    return {
        "_id": entry_id or ObjectId(),
        "at": at,
        "action": action,
        "outcome": outcome,
        "admin_id": object_id(admin_id),
        "organization_id": object_id(organization_id),
        "target": target[:TARGET_MAX] if target is not None else None,
        "reason": reason,
        "client_address": info.client_address,
        "request_id": info.request_id,
    }


def single(entry: Document) -> Document:
    """A single event's entry as inserted (collapsed entries count theirs)."""
    return {**entry, "count": 1, "last_at": entry["at"],
            "last_request_id": entry["request_id"]}


class AuditLog:
    def __init__(self, repository: AuditRepository, cursors: CursorCodec, *,
                 collapse_seconds: int = 60, clock: Callable[[], datetime] = utcnow) -> None:
        self.repository = repository
        self.cursors = cursors
        self.collapse_seconds = collapse_seconds
        self.clock = clock

    async def record(self, info: RequestInfo, action: AuditAction, outcome: AuditOutcome, *,
                     admin_id: str | ObjectId | None = None,
                     organization_id: str | ObjectId | None = None,
                     target: str | None = None, reason: str | None = None) -> None:
        now = self.clock()
        entry = new_entry(info, action, outcome, at=now, admin_id=admin_id,
                          organization_id=organization_id, target=target, reason=reason)
        try:
            if self.collapse_seconds and (action, outcome) in COLLAPSIBLE:
                # Fixed windows keyed in the database: every process counts into the same
                # entry. The entry keeps the first event's time and request id.
                bucket = int(now.timestamp()) // self.collapse_seconds
                await self.repository.collapse(_collapse_key(entry, bucket), entry,
                                               last_at=now, last_request_id=info.request_id)
            else:
                await self.repository.insert(single(entry))
        except PyMongoError as exc:
            # The action itself already happened (or already failed with its own error):
            # answering 503 now would invite a retry of a done action, so the lost entry is
            # logged in full instead.
            entry.pop("_id", None)
            log.error("audit entry not stored (%s): %r", type(exc).__name__, entry)

    async def page(self, organization_id: str, *, limit: int, after: str | None
                   ) -> AuditPage:
        pager = Pager(self.cursors, NEWEST_FIRST, scope=f"audit:{organization_id}",
                      limit=limit, after=after)
        org = object_id(organization_id)
        docs = await self.repository.find(
            pager.filter({"organization_id": org}), sort=pager.sort, limit=pager.fetch_limit,
        ) if org is not None else []
        items, next_cursor = pager.page(docs)
        return AuditPage(entries=[_public(doc) for doc in items], next=next_cursor,
                         next_cursor=next_cursor)


@dataclass(slots=True)
class AuditEvent:
    """What an action learns while it runs (e.g. the id of what it created)."""

    admin_id: str | ObjectId | None = None
    organization_id: str | ObjectId | None = None
    target: str | None = None
    # A remark on a success (e.g. an invitation accepted without its manager, who left).
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Auditor:
    """The audit log bound to one request (its client address and request id)."""

    log: AuditLog
    info: RequestInfo

    async def record(self, action: AuditAction, outcome: AuditOutcome, *,
                     admin_id: str | ObjectId | None = None,
                     organization_id: str | ObjectId | None = None,
                     target: str | None = None, reason: str | None = None) -> None:
        await self.log.record(self.info, action, outcome, admin_id=admin_id,
                              organization_id=organization_id, target=target, reason=reason)

    @asynccontextmanager
    async def action(self, action: AuditAction, event: AuditEvent) -> AsyncIterator[AuditEvent]:
        """Record how the enclosed action ends: success, denied (403) or failure."""
        try:
            yield event
        except Exception as exc:
            error = as_service_error(exc)
            outcome: AuditOutcome = "denied" if isinstance(error, Forbidden) else "failure"
            reason = error.code if error is not None else type(exc).__name__
            await self.record(action, outcome, admin_id=event.admin_id,
                              organization_id=event.organization_id, target=event.target,
                              reason=reason)
            raise
        await self.record(action, "success", admin_id=event.admin_id,
                          organization_id=event.organization_id, target=event.target,
                          reason=event.reason)
