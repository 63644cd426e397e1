"""The mail of a member's single-use link (a password reset, an email verification), and
the link itself, written in the order that keeps them consistent: the message is queued
first, guarded by the link's token and serial, then the link document is written by
compare-and-set. A crash in between leaves a message whose guard never comes true (the
sender drops it); a newer link replaces the token, so an older mail not yet sent is
dropped, never sent with a dead link."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId

from org_service.audit.schemas import AuditAction
from org_service.audit.service import AuditEvent, Auditor
from org_service.auth.throttle import LinkThrottle
from org_service.db import Document
from org_service.errors import Gone, MemberSuspended, NotFound, TooManyRequests
from org_service.links import MemberLinks, token_hash
from org_service.outbox.messages import Guard, Message, Outbox

QUEUED, SUPERSEDED = "queued", "superseded"


async def count_request(throttle: LinkThrottle, email: str, auditor: Auditor,
                        action: AuditAction) -> None:
    """Count a public request for a link to `email` (429 past a limit, audited as
    `throttled` under `action`)."""
    try:
        await throttle.request(email, auditor.info.client_address)
    except TooManyRequests:
        await auditor.record(action, "throttled", target=email, reason=TooManyRequests.code)
        raise


class LinkMailer:
    def __init__(self, links: MemberLinks, outbox: Outbox, *, url_template: str,
                 lifetime: timedelta, clock: Callable[[], datetime]) -> None:
        self.links = links
        self.outbox = outbox
        self.url_template = url_template
        self.lifetime = lifetime
        self.clock = clock

    def url(self, token: str) -> str:
        return self.url_template.format(token=token)

    def document(self, member: Document, previous: Document | None, digest: str,
                 **fields: Any) -> Document:
        """The member's next link: `previous`'s serial + 1, valid `lifetime` from now, at
        the member's token version."""
        now = self.clock()
        return {"_id": member["_id"], "token_hash": digest,
                "serial": (previous["serial"] if previous else 0) + 1, **fields,
                "member_version": member["token_version"], "requested_at": now,
                "expires_at": now + self.lifetime, "used_at": None}

    async def queue(self, doc: Document, previous: Document | None, *, to: str, kind: str,
                    organization_id: Any, mail: tuple[str, str, str]) -> str:
        """Queue the mail of link `doc`, then write `doc` over `previous`: `QUEUED`, or
        `SUPERSEDED` when a concurrent request of the member wrote its link first (and
        queued its own mail; this one is discarded)."""
        subject, text, html = mail
        guard = Guard(collection=self.links.collection.name, id=doc["_id"],
                      fields={"token_hash": doc["token_hash"], "used_at": None},
                      serial_field="serial", serial=doc["serial"], until=doc["expires_at"])
        message = Message(to=to, subject=subject, text=text, html=html, kind=kind,
                          organization_id=organization_id, guard=guard)
        await self.outbox.enqueue(message)
        if not await self.links.replace(previous, doc):
            await self.outbox.discard(message.id)
            return SUPERSEDED
        self.outbox.notify()
        return QUEUED

    async def follow(self, token: str, *,
                     member_of: Callable[[ObjectId], Awaitable[Document | None]],
                     throttle: LinkThrottle, client_address: str | None, event: AuditEvent,
                     dead: Callable[[], NotFound], expired: str
                     ) -> tuple[Document, Document]:
        """The live link `token` names and its member, or the refusal every kind of link
        shares, with nothing written but the throttle's count: unknown, used, or its
        member gone → `dead()` (404); past its expiry → 410 `expired`; both count against
        the client address (429 past the limit). A suspended member → 403, the link left
        as it is (a reactivation moves the token version, which kills a link that
        depends on it; the member asks for a new one)."""
        await throttle.check(client_address)
        now = self.clock()
        link = await self.links.by_token_hash(token_hash(token))
        member = await member_of(link["_id"]) if link is not None else None
        if link is None or member is None or link["used_at"] is not None:
            await throttle.failed(client_address)
            raise dead()
        event.admin_id, event.organization_id = member["_id"], member["organization_id"]
        event.target = member["email"]
        if link["expires_at"] <= now:
            await throttle.failed(client_address)
            raise Gone(expired)
        if member.get("state", "active") != "active":
            raise MemberSuspended()
        return link, member
