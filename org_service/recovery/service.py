"""Password reset: whoever holds the mailbox of an active member's email may choose a new
password through a single-use link, which ends every session of that member.

Asking for a link (`request`) answers the same whatever the email: the same body, after
the same work (a token made off the event loop and as many database round trips on every
path), so neither the answer nor its timing tells whether an account exists. Only the
audit trail records what happened (`queued`, `unknown_email`, `inactive`).

The mail is queued in the outbox before the link it carries is written, with a guard on
the link's token and serial: a crash in between leaves a message the sender drops, and a
newer request (which replaces the token) stops an older mail that was not sent yet.

Using a link (`confirm`) needs no lease or two-phase claim: the link holds the member's
token version of when it was asked for, and the password is written by compare-and-set
on that version, which the write moves on. That one write is the commit point:
- a crash before it changes nothing, and the same link works when retried;
- a crash after it leaves a link whose version is behind the member's, which is dead
  (404) although `used_at` was never set: never a usable link after the password changed;
- two concurrent uses of one link: one compare-and-set wins, the other answers 404.
Any other change that moves the version (another password or email change, a suspension
and reactivation) kills the link too: it was asked for an account that changed since."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from bson import ObjectId

from org_service.audit.service import AuditEvent, Auditor, RequestInfo
from org_service.auth.throttle import ResetThrottle
from org_service.db import Document, utcnow
from org_service.errors import NotFound
from org_service.links import new_token
from org_service.members.repository import ACTIVE, MemberRepository
from org_service.outbox.links import LinkMailer, count_request
from org_service.outbox.messages import Outbox
from org_service.recovery.mail import reset_mail
from org_service.recovery.repository import PasswordResetRepository
from org_service.recovery.schemas import PasswordResetAccepted, PasswordResetConfirm
from org_service.security import PasswordHasher
from org_service.sessions.service import CREDENTIALS, SessionService

ACCEPTED = PasswordResetAccepted(detail=(
    "If this email belongs to an active account, a link to reset its password is on its "
    "way. It works once and for a limited time."))
# What the audit trail records of a request (the caller never learns it), besides
# outbox.links' QUEUED and SUPERSEDED.
UNKNOWN_EMAIL, INACTIVE = "unknown_email", "inactive"


def _dead_link() -> NotFound:
    return NotFound("No such reset link: it is wrong, was used, or a newer one was asked "
                    "for")


class PasswordResetService:
    def __init__(self, *, resets: PasswordResetRepository, members: MemberRepository,
                 hasher: PasswordHasher, sessions: SessionService, outbox: Outbox,
                 throttle: ResetThrottle, url_template: str, minutes: int,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.resets = resets
        self.members = members
        self.hasher = hasher
        self.sessions = sessions
        self.throttle = throttle
        self.clock = clock
        self.mailer = LinkMailer(resets, outbox, url_template=url_template,
                                 lifetime=timedelta(minutes=minutes),
                                 clock=lambda: self.clock())

    async def request(self, email: str, auditor: Auditor) -> PasswordResetAccepted:
        await count_request(self.throttle, email, auditor, "password_reset.request")
        member = await self.members.get_by_email(email)
        active = member is not None and member.get("state", ACTIVE) == ACTIVE
        # Every path from here does the same work: a token and its hash made in a thread,
        # a read of the reset document (a fresh id's, which finds nothing, for nobody),
        # and two more round trips (the message and the link; or two reads standing in
        # for them), so the time taken tells nothing either.
        token, digest = await asyncio.to_thread(new_token)
        previous = await self.resets.get(member["_id"] if member and active else ObjectId())
        if member is None or not active:
            await self.resets.get(ObjectId())
            await self.resets.get(ObjectId())
            reason = UNKNOWN_EMAIL if member is None else INACTIVE
        else:
            reason = await self._queue(member, previous, token, digest)
        await auditor.record("password_reset.request", "success", target=email, reason=reason,
                             admin_id=member["_id"] if member else None,
                             organization_id=member["organization_id"] if member else None)
        return ACCEPTED

    async def confirm(self, data: PasswordResetConfirm, info: RequestInfo,
                      event: AuditEvent) -> None:
        """Set the password and end every session, or refuse with nothing changed."""
        address = info.client_address
        reset, member = await self.mailer.follow(
            data.token, member_of=self.members.get, throttle=self.throttle,
            client_address=address, event=event, dead=_dead_link,
            expired="This reset link has expired: ask for a new one")
        if member["token_version"] != reset["member_version"]:
            # Used already (a crash before `used_at` was set), or the account changed since.
            await self.throttle.failed(address)
            raise _dead_link()
        password_hash = await self.hasher.hash(data.password)
        changed = await self.members.set_credentials(
            member["_id"], token_version=reset["member_version"], password_hash=password_hash)
        if changed is None:
            raise _dead_link()  # a concurrent use of this link (or another change) won
        await self.resets.mark_used(reset, self.clock())
        # The version moved, which already ended every session and access token; this
        # marks the sessions ended.
        await self.sessions.end_member(member["_id"], CREDENTIALS)

    async def _queue(self, member: Document, previous: Document | None, token: str,
                     digest: str) -> str:
        doc = self.mailer.document(member, previous, digest)
        mail = reset_mail(url=self.mailer.url(token), expires_at=doc["expires_at"])
        return await self.mailer.queue(doc, previous, to=member["email"], kind="password_reset",
                                       organization_id=member["organization_id"], mail=mail)
