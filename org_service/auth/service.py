"""Login and identity: every member logs in at /auth/login; /admin/login keeps the seed's
contract for the people who run the organization (owners and admins)."""

from __future__ import annotations

from collections.abc import Collection

from org_service.audit.service import Auditor, RequestInfo
from org_service.auth.schemas import AdminPublic, LoginResponse, MemberLoginResponse
from org_service.auth.throttle import LoginThrottle
from org_service.db import Document
from org_service.errors import (
    EmailUnverified,
    MemberSuspended,
    TenantBusy,
    TooManyRequests,
    Unauthorized,
    WrongLoginRoute,
)
from org_service.members.repository import ACTIVE, MemberRepository
from org_service.organizations.repository import OrganizationRepository
from org_service.organizations.schemas import RENAMING, VISIBLE, public
from org_service.security import HashingBusy, PasswordHasher
from org_service.sessions.service import IssuedSession, SessionService
from org_service.tenancy import TenantContext

INVALID_LOGIN = "Invalid email or password"


class AuthService:
    def __init__(self, *, members: MemberRepository, organizations: OrganizationRepository,
                 hasher: PasswordHasher, sessions: SessionService, throttle: LoginThrottle,
                 require_verified_email: bool = False) -> None:
        self.members = members
        self.organizations = organizations
        self.hasher = hasher
        self.sessions = sessions
        self.throttle = throttle
        self.require_verified_email = require_verified_email

    async def login(self, email: str, password: str, auditor: Auditor,
                    roles: Collection[str] | None = None
                    ) -> tuple[IssuedSession, Document, Document]:
        """The token, member and organization of a valid login; `roles` limits who may
        log in this way (checked after the password, so it reveals nothing to a guesser)."""
        keys = self.throttle.keys(email, auditor.info.client_address)
        # Too many password checks queued: 503 before the attempt is even counted.
        self.hasher.refuse_if_busy(check=True)
        try:
            await self.throttle.check(keys)
            await self.throttle.reserve(keys)
        except TooManyRequests:
            await auditor.record("admin.login", "throttled", target=email,
                                 reason=TooManyRequests.code)
            raise
        member = await self.members.get_by_email(email)
        try:
            # An unknown email is checked against a dummy hash, so both failures take as long.
            valid = await self.hasher.verify(password,
                                             member["password_hash"] if member else None)
        except HashingBusy:
            # Too many hashes queued: the password was never checked, so the attempt is no
            # failure (retrying through an overload must not lock the owner out).
            await self.throttle.refund(keys)
            raise
        org = (await self.organizations.get(member["organization_id"], active_only=False)
               if member else None)
        if not valid or member is None or org is None or org["state"] not in VISIBLE:
            await auditor.record(
                "admin.login", "failure", target=email, reason=Unauthorized.code,
                admin_id=member["_id"] if member else None,
                organization_id=member["organization_id"] if member else None)
            raise Unauthorized(INVALID_LOGIN)
        await self.throttle.succeeded(keys)
        refusal: MemberSuspended | WrongLoginRoute | EmailUnverified | None = None
        if member.get("state", ACTIVE) != ACTIVE:
            refusal = MemberSuspended()
        elif roles is not None and member["role"] not in roles:
            refusal = WrongLoginRoute()
        elif self.require_verified_email and member.get("verified_at") is None:
            # Checked after the password, as the rest: only the account's holder learns it.
            # A missing `verified_at` (a member from before verification) is unverified.
            refusal = EmailUnverified()
        if refusal is not None:
            await auditor.record("admin.login", "denied", target=email, reason=refusal.code,
                                 admin_id=member["_id"], organization_id=org["_id"])
            raise refusal
        if org["state"] == RENAMING:  # a moment: the organization is moving collections
            raise TenantBusy(str(org["_id"]))
        await auditor.record("admin.login", "success", target=email, admin_id=member["_id"],
                             organization_id=org["_id"])
        issued = await self.grant(member, org, auditor.info)
        return issued, member, org

    async def grant(self, member: Document, org: Document, info: RequestInfo
                    ) -> IssuedSession:
        """A new session for a member whose identity was just proven (a password checked,
        an invitation accepted)."""
        await self.members.logged_in(member["_id"])
        return await self.sessions.start(member, org, info)

    async def admin_login(self, email: str, password: str, auditor: Auditor,
                          roles: Collection[str]) -> LoginResponse:
        issued, member, org = await self.login(email, password, auditor, roles)
        return LoginResponse(
            access_token=issued.access.token,
            refresh_token=issued.refresh_token,
            admin_id=str(member["_id"]),
            organization_name=org["organization_name"],
            email=member["email"],
            expires_in=issued.access.expires_in,
        )

    async def member_login(self, email: str, password: str, auditor: Auditor
                           ) -> MemberLoginResponse:
        issued, member, org = await self.login(email, password, auditor)
        return self.member_login_response(issued, member, org)

    @staticmethod
    def member_login_response(issued: IssuedSession, member: Document, org: Document
                              ) -> MemberLoginResponse:
        """What /auth/login (and an accepted invitation) answers."""
        return MemberLoginResponse(
            access_token=issued.access.token,
            refresh_token=issued.refresh_token,
            member_id=str(member["_id"]),
            role=member["role"],
            organization_id=str(org["_id"]),
            organization_name=org["organization_name"],
            email=member["email"],
            expires_in=issued.access.expires_in,
        )

    @staticmethod
    def me(tenant: TenantContext) -> AdminPublic:
        return AdminPublic(
            admin_id=tenant.member_id,
            email=tenant.member["email"],
            role=tenant.role,
            organization=public(tenant.organization),
        )
