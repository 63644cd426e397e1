"""Changing a member's own email or password, wherever it is asked (the organization update
of the seed, `PATCH /me`): held to a recent login or the current password, hashed before
anything changes, and written by compare-and-set on the token's version. A new email is
not written here: it waits for the link mailed to it (org_service/verification)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from org_service.auth.throttle import LoginThrottle
from org_service.errors import Conflict, InvalidCurrentPassword, StepUpRequired, Unauthorized
from org_service.members.repository import MemberRepository
from org_service.models import email_key
from org_service.security import HashingBusy, PasswordHasher
from org_service.sessions.service import CREDENTIALS, SessionService
from org_service.tenancy import TenantContext
from org_service.verification.service import EmailVerificationService


def email_taken() -> Conflict:
    return Conflict("This email is already used by another account")


@dataclass(frozen=True, slots=True)
class StepUp:
    """What a credential change is held to: how recent the token's login must be, and the
    login throttle (per account and client address) that a current password counts in."""

    max_age: timedelta
    throttle: LoginThrottle
    client_address: str | None


@dataclass(frozen=True, slots=True)
class CredentialChange:
    """A checked change, ready to write (nothing written yet)."""

    email: str | None  # the new email, to confirm by its link (None: no change)
    password_hash: str | None
    client_address: str | None = None

    @property
    def empty(self) -> bool:
        return self.email is None and self.password_hash is None


class Credentials:
    def __init__(self, members: MemberRepository, hasher: PasswordHasher,
                 sessions: SessionService, verification: EmailVerificationService) -> None:
        self.members = members
        self.hasher = hasher
        self.sessions = sessions
        self.verification = verification

    async def prepare(self, tenant: TenantContext, *, email: str | None, password: str | None,
                      current_password: str | None, step_up: StepUp,
                      recent_login_suffices: bool = True) -> CredentialChange:
        """Check the change may be made and hash the new password (slow work, before any
        write). A current password is checked whenever it is given; without one, a recent
        login suffices where the route allows it."""
        changing = email is not None or password is not None
        if current_password is not None:
            await self.check_current_password(tenant, current_password, step_up)
        elif changing and not recent_login_suffices:
            raise StepUpRequired(None)
        elif changing and not tenant.claims.authenticated_within(step_up.max_age):
            raise StepUpRequired(int(step_up.max_age.total_seconds()))
        password_hash = await self.hasher.hash(password) if password else None
        if email is not None and email_key(email) == email_key(tenant.member["email"]):
            email = None  # the email it has: nothing to confirm
        if email is not None:
            # Checked now (409 at once) and again, by the unique index, when the link is
            # followed: the address may be taken in between.
            holder = await self.members.get_by_email(email)
            if holder is not None:
                raise email_taken()
        return CredentialChange(email, password_hash, step_up.client_address)

    async def apply(self, tenant: TenantContext, change: CredentialChange) -> str | None:
        """Write the password, and ask the new email (if any) to confirm by a link; the
        address the email change now waits on (None: no email change).

        The password is written by compare-and-set on the token's version: a credential
        change that ran while this one hashed has revoked this token, and must not be
        overwritten by it. The email change's link holds the version after that write, so
        a later credential change kills it."""
        version = tenant.claims.version
        if change.email is not None:
            # Counted before anything is written: a 429 here changes nothing. Against the
            # new address, whose inbox the link goes to.
            await self.verification.throttle.request(change.email, change.client_address)
        if change.password_hash is not None:
            changed = await self.members.set_credentials(
                tenant.member["_id"], token_version=version,
                password_hash=change.password_hash)
            if changed is None:
                raise Unauthorized("This token was revoked by another credential change "
                                   "meanwhile; log in again")
            version = changed["token_version"]
            # The version moved, which already ends every session; this marks them ended.
            await self.sessions.end_member(tenant.member["_id"], CREDENTIALS)
        if change.email is None:
            return None
        await self.verification.request_change(tenant.member, change.email, version=version)
        return change.email

    async def check_current_password(self, tenant: TenantContext, password: str,
                                     step_up: StepUp) -> None:
        """Step-up by password, guarded like a login: counted by the login throttle before
        the check (so a stolen token cannot guess faster than login allows), checked by
        bcrypt off the event loop; a right one clears the account's failures."""
        throttle = step_up.throttle
        keys = throttle.keys(tenant.member["email"], step_up.client_address)
        await throttle.check(keys)
        await throttle.reserve(keys)
        member = await self.members.get(tenant.member["_id"])
        try:
            # A vanished member still costs one full check (against the dummy hash), then
            # fails.
            valid = await self.hasher.verify(password, member["password_hash"] if member
                                             else None)
        except HashingBusy:
            await throttle.refund(keys)  # never checked: as at login, no failure
            raise
        if not valid:
            raise InvalidCurrentPassword("current_password is not the member's password")
        await throttle.succeeded(keys)
