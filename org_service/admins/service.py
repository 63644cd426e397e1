"""Admin login and identity."""

from __future__ import annotations

from org_service.admins.repository import AdminRepository
from org_service.admins.schemas import AdminPublic, LoginResponse
from org_service.admins.throttle import LoginThrottle
from org_service.audit.service import Auditor
from org_service.errors import TenantBusy, TooManyRequests, Unauthorized
from org_service.organizations.repository import OrganizationRepository
from org_service.organizations.schemas import RENAMING, VISIBLE, public
from org_service.security import HashingBusy, PasswordHasher, TokenCodec
from org_service.tenancy import TenantContext

INVALID_LOGIN = "Invalid email or password"


class AdminService:
    def __init__(self, *, admins: AdminRepository, organizations: OrganizationRepository,
                 hasher: PasswordHasher, tokens: TokenCodec, throttle: LoginThrottle) -> None:
        self.admins = admins
        self.organizations = organizations
        self.hasher = hasher
        self.tokens = tokens
        self.throttle = throttle

    async def login(self, email: str, password: str, auditor: Auditor) -> LoginResponse:
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
        admin = await self.admins.get_by_email(email)
        try:
            # An unknown email is checked against a dummy hash, so both failures take as long.
            valid = await self.hasher.verify(password, admin["password_hash"] if admin else None)
        except HashingBusy:
            # Too many hashes queued: the password was never checked, so the attempt is no
            # failure (retrying through an overload must not lock the owner out).
            await self.throttle.refund(keys)
            raise
        org = (await self.organizations.get(admin["organization_id"], active_only=False)
               if admin else None)
        if not valid or admin is None or org is None or org["state"] not in VISIBLE:
            await auditor.record(
                "admin.login", "failure", target=email, reason=Unauthorized.code,
                admin_id=admin["_id"] if admin else None,
                organization_id=admin["organization_id"] if admin else None)
            raise Unauthorized(INVALID_LOGIN)
        await self.throttle.succeeded(keys)
        if org["state"] == RENAMING:  # a moment: the organization is moving collections
            raise TenantBusy(str(org["_id"]))
        await auditor.record("admin.login", "success", target=email, admin_id=admin["_id"],
                             organization_id=org["_id"])
        token = self.tokens.issue(admin_id=str(admin["_id"]), organization_id=str(org["_id"]),
                                  version=admin["token_version"], role=admin["role"])
        return LoginResponse(
            access_token=token,
            admin_id=str(admin["_id"]),
            organization_name=org["organization_name"],
            email=admin["email"],
            expires_in=int(self.tokens.expire.total_seconds()),
        )

    @staticmethod
    def me(tenant: TenantContext) -> AdminPublic:
        return AdminPublic(
            admin_id=tenant.admin_id,
            email=tenant.admin["email"],
            role=tenant.admin["role"],
            organization=public(tenant.organization),
        )
