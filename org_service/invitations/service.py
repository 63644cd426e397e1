"""Invitations: an owner, admin or manager invites someone by email; the person follows
the emailed link, chooses a name and password, and is a member.

Each step is a compare-and-set on what the database says now. The mail is queued in the
outbox before the invitation it tells about is written (or its token rotated): a crash in
between leaves only a message whose guard never comes true, which the sender drops, never
an invitation whose mail is lost. Accepting inserts the member first, marked with the
invitation's id, then marks the invitation accepted: a crash in between leaves a member a
retry recognises (and finishes), and a revoke or resend that won the race removes the
member again."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from org_service.audit.service import AuditEvent, RequestInfo
from org_service.auth.credentials import email_taken
from org_service.auth.schemas import MemberLoginResponse
from org_service.auth.service import AuthService
from org_service.auth.throttle import InvitationThrottle
from org_service.db import Document, object_id, utcnow
from org_service.errors import Conflict, Gone, NotFound, PermissionDenied, TenantBusy
from org_service.invitations.mail import invitation_mail
from org_service.invitations.repository import (
    ACCEPTED,
    COLLECTION,
    EXPIRED,
    PENDING,
    InvitationRepository,
)
from org_service.invitations.schemas import (
    InvitationAccept,
    InvitationCreate,
    InvitationPage,
    InvitationPublic,
    InvitationState,
    InvitationView,
    InvitationWithLink,
)
from org_service.links import new_token, token_hash
from org_service.members.repository import ACTIVE, MemberRepository
from org_service.members.service import MemberService
from org_service.models import email_key, mask_email
from org_service.organizations.repository import OrganizationRepository
from org_service.organizations.schemas import RENAMING, VISIBLE
from org_service.outbox.messages import Guard, Message, Outbox
from org_service.pagination import CursorCodec, Pager, SortOrder
from org_service.roles import allows, outranks_or_equals
from org_service.security import PasswordHasher
from org_service.tenancy import TenantContext

NEWEST_FIRST = SortOrder(("_id",), direction=-1)
MANAGER_GONE = "manager_gone"


def expired(invitation: Document, now: datetime) -> bool:
    past: bool = invitation["expires_at"] <= now
    return invitation["state"] == EXPIRED or (invitation["state"] == PENDING and past)


def state_of(invitation: Document, now: datetime) -> InvitationState:
    """The state as callers see it: a pending invitation past its expiry is expired."""
    if expired(invitation, now):
        return "expired"
    state: InvitationState = invitation["state"]
    return state


def invitation_public(doc: Document, now: datetime) -> InvitationPublic:
    def text(key: str) -> str | None:
        return str(doc[key]) if doc.get(key) is not None else None

    return InvitationPublic(
        id=str(doc["_id"]), email=doc["email"], role=doc["role"],
        manager_id=text("manager_id"), state=state_of(doc, now),
        created_at=doc["created_at"], expires_at=doc["expires_at"],
        expires_in_days=doc["expires_in_days"], invited_by=str(doc["invited_by"]),
        resent_at=doc.get("resent_at"), accepted_at=doc.get("accepted_at"),
        member_id=text("member_id"), revoked_at=doc.get("revoked_at"),
        revoked_by=text("revoked_by"))


def _not_found() -> NotFound:
    return NotFound("No such invitation in your organization")


def _not_pending(doc: Document, now: datetime, action: str) -> Conflict:
    return Conflict(f"Only a pending invitation can be {action}; this one is "
                    f"{state_of(doc, now)}")


class InvitationService:
    def __init__(self, *, invitations: InvitationRepository, members: MemberRepository,
                 member_rules: MemberService, organizations: OrganizationRepository,
                 hasher: PasswordHasher, outbox: Outbox, auth: AuthService,
                 throttle: InvitationThrottle, cursors: CursorCodec, url_template: str,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.invitations = invitations
        self.members = members
        self.member_rules = member_rules
        self.organizations = organizations
        self.hasher = hasher
        self.outbox = outbox
        self.auth = auth
        self.throttle = throttle
        self.cursors = cursors
        self.url_template = url_template
        self.clock = clock

    # -- the organization's side ---------------------------------------------------------

    async def create(self, tenant: TenantContext, data: InvitationCreate
                     ) -> tuple[InvitationWithLink, bool]:
        """The new invitation with its link, and True; or the pending invitation of this
        email (without a link: it went to the invited person), and False."""
        manager_id = await self._may_invite(tenant, data)
        org_id = tenant.organization["_id"]
        key = email_key(str(data.email))
        # Three rounds at most: a pending one past its expiry is marked expired (its slot
        # freed), or a concurrent invitation of the same email won the insert.
        for _ in range(3):
            now = self.clock()
            existing = await self.invitations.pending_for(org_id, key)
            if existing is not None:
                if not expired(existing, now):
                    public = invitation_public(existing, now)
                    return InvitationWithLink(**public.model_dump(), accept_url=None), False
                await self.invitations.mark_expired(existing, now)
                continue
            if await self.members.get_by_email(str(data.email)):
                raise email_taken()
            token, digest = new_token()
            doc: Document = {
                "_id": ObjectId(), "organization_id": org_id, "email": str(data.email),
                "email_key": key, "role": data.role, "manager_id": manager_id,
                "state": PENDING, "token_hash": digest, "token_serial": 1,
                "created_at": now, "expires_at": now + timedelta(days=data.expires_in_days),
                "expires_in_days": data.expires_in_days, "invited_by": tenant.member["_id"],
                "resent_at": None, "accepted_at": None, "member_id": None,
                "revoked_at": None, "revoked_by": None,
            }
            message = self._mail(tenant, doc, token)
            await self.outbox.enqueue(message)
            try:
                await self.invitations.insert(doc)
            except DuplicateKeyError:
                await self.outbox.discard(message.id)
                continue  # the concurrent invitation of this email: read it next round
            self.outbox.notify()
            return self._with_link(doc, token, now), True
        raise Conflict("Invitations of this email changed meanwhile; retry")

    async def page(self, tenant: TenantContext, *, limit: int, after: str | None,
                   state: str | None) -> InvitationPage:
        """The organization's invitations, newest first (a manager: the ones they sent)."""
        now = self.clock()
        org_id = tenant.organization["_id"]
        query: Document = {"organization_id": org_id}
        scope = f"invitations:{org_id}:{state or 'all'}"
        if not allows(tenant.role, "invitations:manage"):
            query["invited_by"] = tenant.member["_id"]
            scope += f":{tenant.member_id}"
        if state == PENDING:
            query.update(state=PENDING, expires_at={"$gt": now})
        elif state == EXPIRED:
            query["$or"] = [{"state": EXPIRED},
                            {"state": PENDING, "expires_at": {"$lte": now}}]
        elif state is not None:
            query["state"] = state
        pager = Pager(self.cursors, NEWEST_FIRST, scope=scope, limit=limit, after=after)
        docs = await self.invitations.find(pager.filter(query), sort=pager.sort,
                                           limit=pager.fetch_limit)
        items, next_cursor = pager.page(docs)
        return InvitationPage(items=[invitation_public(doc, now) for doc in items],
                              next=next_cursor)

    async def resend(self, tenant: TenantContext, invitation_id: str) -> InvitationWithLink:
        """A new token (the old link stops working at once), a new expiry, a new mail."""
        doc = await self._own(tenant, invitation_id)
        now = await self._still_pending(doc, "resent")
        token, rotated_hash = new_token()
        expires_at = now + timedelta(days=doc["expires_in_days"])
        future = {**doc, "token_hash": rotated_hash, "expires_at": expires_at,
                  "token_serial": doc["token_serial"] + 1}
        message = self._mail(tenant, future, token)
        await self.outbox.enqueue(message)
        changed = await self.invitations.rotate(doc, token_hash=rotated_hash,
                                                expires_at=expires_at, now=now)
        if changed is None:
            await self.outbox.discard(message.id)
            raise await self._changed_meanwhile(doc, "resent")
        self.outbox.notify()
        return self._with_link(changed, token, now)

    async def revoke(self, tenant: TenantContext, invitation_id: str) -> InvitationPublic:
        doc = await self._own(tenant, invitation_id)
        now = await self._still_pending(doc, "revoked")
        changed = await self.invitations.revoke(doc, by=tenant.member["_id"], now=now)
        if changed is None:
            raise await self._changed_meanwhile(doc, "revoked")
        return invitation_public(changed, now)

    # -- the invited person's side (public, throttled per client address) -----------------

    async def view(self, token: str, client_address: str | None) -> InvitationView:
        invitation = await self._by_token(token, client_address)
        org = await self._organization(invitation)
        # Not shown as open when it cannot be accepted (revoked here as the accept would).
        await self._sender_still_grants(invitation)
        return InvitationView(organization_name=org["organization_name"],
                              role=invitation["role"], email=mask_email(invitation["email"]),
                              expires_at=invitation["expires_at"])

    async def accept(self, data: InvitationAccept, info: RequestInfo, event: AuditEvent
                     ) -> MemberLoginResponse:
        """The new member's first session (the link proved the address)."""
        invitation = await self._by_token(data.token, info.client_address)
        event.organization_id = invitation["organization_id"]
        event.target = f"{invitation['_id']} {invitation['email']} ({invitation['role']})"
        org = await self._organization(invitation)
        await self._sender_still_grants(invitation)
        # Checked before the password hash (a quarter of a second of a thread), and again
        # by the unique email index when the member is written.
        existing = await self.members.get_by_email(invitation["email"])
        if existing is not None:
            raise await self._account_exists(existing, invitation)
        password_hash = await self.hasher.hash(data.password)
        manager_id = invitation.get("manager_id")
        if manager_id is not None and not await self._active_member(org["_id"], manager_id):
            manager_id, event.reason = None, f"{MANAGER_GONE}: added without a manager"
        try:
            member = await self.members.insert(
                email=invitation["email"], password_hash=password_hash,
                organization_id=org["_id"], role=invitation["role"], name=data.name,
                manager_id=manager_id, invitation_id=invitation["_id"],
                # The link reached this address: that is the proof a verification asks.
                verified_at=self.clock())
        except DuplicateKeyError:
            existing = await self.members.get_by_email(invitation["email"])
            if existing is None:  # created and removed again meanwhile
                raise Conflict("This email's account changed meanwhile; retry") from None
            raise await self._account_exists(existing, invitation) from None
        event.admin_id = member["_id"]
        accepted = await self.invitations.accept(invitation, member_id=member["_id"],
                                                 now=self.clock())
        if accepted is None:
            # A concurrent accept that lost the insert to this one may have finished the
            # invitation for it (`_account_exists`): then it is accepted, by this member.
            current = await self.invitations.get(invitation["_id"])
            if (current is not None and current["state"] == ACCEPTED
                    and current.get("member_id") == member["_id"]):
                accepted = current
        if accepted is None:
            # Revoked, resent or expired since it was read: the member goes again.
            await self.members.delete_invited(member["_id"], invitation["_id"])
            event.admin_id = None
            if current is not None and expired(current, self.clock()):
                raise Gone("This invitation has expired: ask for a new one")
            raise NotFound("This invitation was revoked or resent meanwhile")
        # The one place an accepted invitation turns into a login.
        issued = await self.auth.grant(member, org, info)
        return self.auth.member_login_response(issued, member, org)

    # -- rules ---------------------------------------------------------------------------

    async def _may_invite(self, tenant: TenantContext, data: InvitationCreate
                          ) -> ObjectId | None:
        """The manager the new member will have, if the caller may invite this role."""
        if not outranks_or_equals(tenant.role, data.role):
            raise PermissionDenied(f"A member with role {tenant.role} cannot grant "
                                   f"{data.role}")
        if allows(tenant.role, "invitations:manage"):
            return await self.member_rules.valid_manager(tenant, data.manager_id)
        # A manager: employees who will report to them, nobody else.
        if data.role != "employee":
            raise PermissionDenied("A manager invites employees only")
        if data.manager_id not in (None, tenant.member_id):
            raise PermissionDenied("A manager invites employees who report to them: leave "
                                   "manager_id out or name yourself")
        manager: ObjectId = tenant.member["_id"]
        return manager

    async def _own(self, tenant: TenantContext, invitation_id: str) -> Document:
        """An invitation the caller may act on: any of the organization's with
        invitations:manage, else one they sent. Others are not found, not forbidden."""
        oid = object_id(invitation_id)
        doc = (await self.invitations.get_in(tenant.organization["_id"], oid)
               if oid is not None else None)
        if doc is None or (not allows(tenant.role, "invitations:manage")
                           and doc["invited_by"] != tenant.member["_id"]):
            raise _not_found()
        return doc

    async def _still_pending(self, doc: Document, action: str) -> datetime:
        now = self.clock()
        if doc["state"] == PENDING and expired(doc, now):
            await self.invitations.mark_expired(doc, now)
        if doc["state"] != PENDING or expired(doc, now):
            raise _not_pending(doc, now, action)
        return now

    async def _changed_meanwhile(self, doc: Document, action: str) -> Conflict:
        current = await self.invitations.get(doc["_id"])
        now = self.clock()
        if current is None or (current["state"] == PENDING and not expired(current, now)):
            return Conflict("The invitation changed meanwhile; read it again and retry")
        return _not_pending(current, now, action)

    async def _by_token(self, token: str, client_address: str | None) -> Document:
        """The pending invitation of a token. Unknown, revoked, used and expired tokens
        count against the client address (20 per 15 minutes by default, as failed logins):
        nobody can guess a 256-bit token, but a scanner would still cost a lookup each."""
        await self.throttle.check(client_address)
        now = self.clock()
        doc = await self.invitations.by_token_hash(token_hash(token))
        if doc is None or doc["state"] not in (PENDING, EXPIRED):
            await self.throttle.failed(client_address)
            raise NotFound("No such invitation: the link is wrong, or the invitation was "
                           "revoked, resent or used")
        if expired(doc, now):
            if doc["state"] == PENDING:
                await self.invitations.mark_expired(doc, now)
            await self.throttle.failed(client_address)
            raise Gone("This invitation has expired: ask for a new one")
        return doc

    async def _organization(self, invitation: Document) -> Document:
        org = await self.organizations.get(invitation["organization_id"], active_only=False)
        if org is None or org["state"] not in VISIBLE:
            raise NotFound("The organization of this invitation no longer exists")
        if org["state"] == RENAMING:  # a moment: the organization is moving collections
            raise TenantBusy(str(org["_id"]))
        return org

    async def _sender_still_grants(self, invitation: Document) -> None:
        """An invitation grants what its sender may grant now, not when it was sent: a
        sender since removed, suspended or demoted below what the invitation grants takes
        the invitation with them (revoked here, before anything is written for the new
        member, and answered as any revoked link)."""
        sender = await self.members.get_in(invitation["organization_id"],
                                           invitation["invited_by"])
        role = (sender["role"] if sender is not None
                and sender.get("state", ACTIVE) == ACTIVE else None)
        if role is not None and allows(role, "invitations:create") and outranks_or_equals(
                role, invitation["role"]) and (allows(role, "invitations:manage")
                                               or invitation["role"] == "employee"):
            return
        await self.invitations.revoke(invitation, by=invitation["invited_by"],
                                      now=self.clock())
        raise NotFound("This invitation was revoked: whoever sent it can no longer grant "
                       "this role. Ask the organization for a new one")

    async def _active_member(self, organization_id: ObjectId, member_id: ObjectId) -> bool:
        member = await self.members.get_in(organization_id, member_id)
        return member is not None and member.get("state", ACTIVE) == ACTIVE

    async def _account_exists(self, existing: Document, invitation: Document) -> Conflict:
        if existing.get("invitation_id") == invitation["_id"]:
            # An earlier accept of this invitation made the member and stopped (or is
            # finishing right now): finish it, and point at the login.
            await self.invitations.finish_accept(invitation, member_id=existing["_id"],
                                                 now=self.clock())
            return Conflict("This invitation was already accepted: log in with its email "
                            "(POST /auth/login)")
        return Conflict("This email already has an account: log in with it, or ask for an "
                        "invitation to another email")

    # -- the mail ------------------------------------------------------------------------

    def _mail(self, tenant: TenantContext, doc: Document, token: str) -> Message:
        subject, text, html = invitation_mail(
            organization=tenant.organization["organization_name"],
            inviter=tenant.member.get("name") or tenant.member["email"], role=doc["role"],
            url=self.url_template.format(token=token), expires_at=doc["expires_at"])
        guard = Guard(collection=COLLECTION, id=doc["_id"],
                      fields={"state": PENDING, "token_hash": doc["token_hash"]},
                      serial_field="token_serial", serial=doc["token_serial"],
                      until=doc["expires_at"])
        return Message(to=doc["email"], subject=subject, text=text, html=html,
                       kind="invitation", organization_id=doc["organization_id"],
                       guard=guard)

    def _with_link(self, doc: Document, token: str, now: datetime) -> InvitationWithLink:
        return InvitationWithLink(**invitation_public(doc, now).model_dump(),
                                  accept_url=self.url_template.format(token=token))

