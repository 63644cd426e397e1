"""Email verification and email change: a member's email is proven by a single-use link
mailed to it, and a new email takes effect only once the link mailed to the new address
is followed.

Links are those of password resets (org_service/links.py): 256 bits, only the SHA-256
stored, one live link per member (a new request replaces it), the mail queued in the
outbox before the link is written, with a guard on the link's token and serial, so a
superseded or never-written link's mail is dropped.

Following a link (`confirm`) commits with one compare-and-set on the member:
- verification: `verified_at` set where the email is still the link's and not verified
  yet. Of two concurrent uses one sets it; the other finds it set and answers 404. A crash
  before `used_at` is written leaves a link whose member is verified: dead all the same.
- email change: the email (and `verified_at`) set where the token version is still the
  link's, moving the version, which ends every session: it is a credential change, and
  nobody presents a session to follow a link from a mail. Two concurrent uses: one
  wins, the other 404. The new email may have been taken since the request: the unique
  index refuses it (409), nothing written. Any other credential change in between (a
  password change or reset, a suspension) moved the version: the link is dead (404).
Every refusal writes nothing but its throttle count and its audit entry."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from org_service.audit.schemas import AuditOutcome
from org_service.audit.service import AuditEvent, Auditor, RequestInfo
from org_service.auth.throttle import VerificationThrottle
from org_service.db import Document, utcnow
from org_service.errors import Conflict, NotFound, TooManyRequests
from org_service.links import new_token
from org_service.members.repository import ACTIVE, EMAIL_CHANGE_ASKED, MemberRepository
from org_service.models import email_key, mask_email
from org_service.outbox.links import LinkMailer, count_request
from org_service.outbox.messages import Message, Outbox
from org_service.sessions.service import CREDENTIALS, SessionService
from org_service.verification.mail import change_notice, verification_mail
from org_service.verification.repository import EmailVerificationRepository
from org_service.verification.schemas import (
    EmailVerified,
    VerificationAccepted,
    VerificationSent,
)

ACCEPTED = VerificationAccepted(detail=(
    "If this email belongs to an active account that is not verified yet, a new "
    "verification link is on its way. It works once and for a limited time."))
# What the audit trail records of a request (besides outbox.links' QUEUED and
# SUPERSEDED); the public resend's caller never learns it.
UNKNOWN_EMAIL, INACTIVE, VERIFIED = "unknown_email", "inactive", "verified"


def _dead_link() -> NotFound:
    return NotFound("No such verification link: it is wrong, was used, or a newer one was "
                    "asked for")


def already_verified() -> Conflict:
    return Conflict("This email is verified already, and no email change waits on a link")


def _live_change(link: Document | None, member: Document) -> bool:
    """Whether `link` is an email change that may still be followed (expired included:
    a resend renews it)."""
    return (link is not None and link.get("change", False) and link["used_at"] is None
            and link["member_version"] == member["token_version"])


class EmailVerificationService:
    def __init__(self, *, links: EmailVerificationRepository, members: MemberRepository,
                 sessions: SessionService, outbox: Outbox, throttle: VerificationThrottle,
                 url_template: str, hours: int, clock: Callable[[], datetime] = utcnow
                 ) -> None:
        self.links = links
        self.members = members
        self.sessions = sessions
        self.outbox = outbox
        self.throttle = throttle
        self.clock = clock
        self.mailer = LinkMailer(links, outbox, url_template=url_template,
                                 lifetime=timedelta(hours=hours), clock=lambda: self.clock())

    # -- sending links ---------------------------------------------------------------------

    async def first_link(self, email: str, auditor: Auditor) -> None:
        """The link of a member just added (directly, or as an organization's creator).
        Once: a replayed create finds the link there and sends nothing more."""
        member = await self.members.get_by_email(email)
        if member is None or member.get("verified_at") is not None:
            return
        previous = await self.links.get(member["_id"])
        if previous is not None:
            return
        reason = await self._send(member, previous, to=member["email"], change=False)
        await self._audit_send(auditor, member, reason)

    async def resend_mine(self, member: Document, auditor: Auditor) -> VerificationSent:
        """POST /me/email/verify: a new link for the email change waiting on one, else for
        the member's own email; 409 when that is verified and no change waits."""
        previous = await self.links.get(member["_id"])
        change = _live_change(previous, member)
        if not change and member.get("verified_at") is not None:
            raise already_verified()
        to = previous["email"] if change and previous is not None else member["email"]
        try:
            await self.throttle.request(to, auditor.info.client_address)
        except TooManyRequests:
            await self._audit_send(auditor, member, TooManyRequests.code, "throttled")
            raise
        reason = await self._send(member, previous, to=to, change=change)
        await self._audit_send(auditor, member, reason)
        return VerificationSent(detail="A new link is on its way; the previous one no "
                                       "longer works", email=to)

    async def resend(self, email: str, auditor: Auditor) -> VerificationAccepted:
        """POST /auth/verify-email/resend: the way back for a member who cannot log in
        (REQUIRE_VERIFIED_EMAIL). Always the same 202: only an active, unverified
        member gets a mail (to the address an email change of theirs waits on, else to
        their email); the audit trail records which it was."""
        await count_request(self.throttle, email, auditor, "email_verification.send")
        member = await self.members.get_by_email(email)
        reason = (UNKNOWN_EMAIL if member is None
                  else INACTIVE if member.get("state", ACTIVE) != ACTIVE
                  else VERIFIED if member.get("verified_at") is not None else None)
        # Every path makes a token in a thread and reads a link document (a fresh id's
        # for nobody), so the time taken tells little about the account.
        token, digest = await asyncio.to_thread(new_token)
        previous = await self.links.get(member["_id"] if member and reason is None
                                        else ObjectId())
        if reason is None and member is not None:
            # An email change waiting on its link is renewed, not replaced: a stranger
            # who knows the old email must not be able to cancel it.
            change = _live_change(previous, member)
            to = previous["email"] if change and previous is not None else member["email"]
            reason = await self._queue(member, previous, token, digest, to=to, change=change)
        await auditor.record("email_verification.send", "success", target=email,
                             reason=reason, admin_id=member["_id"] if member else None,
                             organization_id=member["organization_id"] if member else None)
        return ACCEPTED

    async def request_change(self, member: Document, new_email: str, *, version: int
                             ) -> None:
        """Queue the link that makes `new_email` the member's email (applied at token
        `version`), and a notice to the current address. The email stays as it is. (The
        caller counted the request in `throttle` first.)"""
        # The hint first: a crash after it leaves a hint with no change, never a change
        # GET /me would not show.
        await self.members.note_email_change(member["_id"])
        previous = await self.links.get(member["_id"])
        await self._send({**member, "token_version": version}, previous, to=new_email,
                         change=True)
        subject, text, html = change_notice(new_email=mask_email(new_email))
        await self.outbox.enqueue(Message(
            to=member["email"], subject=subject, text=text, html=html,
            kind="email_change_notice", organization_id=member["organization_id"]))
        self.outbox.notify()

    async def pending_email(self, member: Document) -> str | None:
        """The address an email change of the member waits on (None: none). A member who
        never asked for one costs no read."""
        if not member.get(EMAIL_CHANGE_ASKED):
            return None
        link = await self.links.get(member["_id"])
        if _live_change(link, member) and link is not None:
            pending: str = link["email"]
            return pending
        return None

    async def _send(self, member: Document, previous: Document | None, *, to: str,
                    change: bool) -> str:
        token, digest = await asyncio.to_thread(new_token)
        return await self._queue(member, previous, token, digest, to=to, change=change)

    async def _queue(self, member: Document, previous: Document | None, token: str,
                     digest: str, *, to: str, change: bool) -> str:
        doc = self.mailer.document(member, previous, digest, email=to, change=change)
        mail = verification_mail(url=self.mailer.url(token), expires_at=doc["expires_at"],
                                 change=change)
        return await self.mailer.queue(
            doc, previous, to=to, kind="email_change" if change else "email_verification",
            organization_id=member["organization_id"], mail=mail)

    @staticmethod
    async def _audit_send(auditor: Auditor, member: Document, reason: str,
                          outcome: AuditOutcome = "success") -> None:
        await auditor.record("email_verification.send", outcome, target=member["email"],
                             reason=reason, admin_id=member["_id"],
                             organization_id=member["organization_id"])

    # -- following a link ------------------------------------------------------------------

    async def confirm(self, token: str, info: RequestInfo, event: AuditEvent
                      ) -> EmailVerified:
        """Verify the email (or make the new one the email), or refuse with nothing
        changed. Dead links count against the client address (429 past the limit)."""
        address = info.client_address
        link, member = await self.mailer.follow(
            token, member_of=self.members.get, throttle=self.throttle,
            client_address=address, event=event, dead=_dead_link,
            expired="This verification link has expired: ask for a new one")
        event.target = link["email"]
        now = self.clock()
        if link["change"]:
            changed = await self._change(member, link, now)
        else:
            changed = (await self.members.mark_verified(member["_id"], link["email"], now)
                       if email_key(member["email"]) == email_key(link["email"]) else None)
        if changed is None:
            # Used already (a crash before `used_at` was set, or a concurrent use won), or
            # the account changed since the link was asked for.
            await self.throttle.failed(address)
            raise _dead_link()
        await self.links.mark_used(link, self.clock())
        if link["change"]:
            event.target = f"{member['email']} -> {changed['email']}"
            # The version moved, which already ended every session; this marks them ended.
            await self.sessions.end_member(member["_id"], CREDENTIALS)
        return EmailVerified(email=changed["email"], verified_at=changed["verified_at"],
                             email_changed=link["change"])

    async def _change(self, member: Document, link: Document, now: datetime
                      ) -> Document | None:
        if member["token_version"] != link["member_version"]:
            return None
        try:
            return await self.members.set_credentials(
                member["_id"], token_version=link["member_version"], email=link["email"],
                verified_at=now)
        except DuplicateKeyError:
            raise Conflict("This email was taken by another account since the change was "
                           "asked for: ask for a change to another address") from None
