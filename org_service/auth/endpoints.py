from __future__ import annotations

from fastapi import APIRouter

from org_service.auth.schemas import AdminPublic, LoginRequest, LoginResponse, MemberLoginResponse
from org_service.auth.service import AuthService
from org_service.deps import CurrentAuditor, CurrentTenant, ServicesDep
from org_service.errors import (
    EmailUnverified,
    Forbidden,
    MemberSuspended,
    TooManyRequests,
    Unauthorized,
    WrongLoginRoute,
    responses,
)
from org_service.roles import ADMIN_LOGIN_ROLES
from org_service.strict_json import StrictJSONRoute

router = APIRouter(prefix="/admin", tags=["Admin auth"], route_class=StrictJSONRoute)
member_router = APIRouter(prefix="/auth", tags=["Member auth"], route_class=StrictJSONRoute)


@router.post("/login", response_model=LoginResponse,
             responses=responses(Unauthorized, WrongLoginRoute, EmailUnverified,
                                 TooManyRequests))
async def login(body: LoginRequest, services: ServicesDep, auditor: CurrentAuditor
                ) -> LoginResponse:
    """Exchange an owner's or admin's email and password for a bearer token (other members:
    403 `use_auth_login`, naming /auth/login). Repeated failures for one email or from one
    address are throttled (429 with Retry-After); a suspended member gets 403
    `member_suspended`."""
    return await services.auth.admin_login(body.email, body.password, auditor,
                                           ADMIN_LOGIN_ROLES)


@member_router.post("/login", response_model=MemberLoginResponse,
                    responses=responses(Unauthorized, MemberSuspended, EmailUnverified,
                                        TooManyRequests))
async def member_login(body: LoginRequest, services: ServicesDep, auditor: CurrentAuditor
                       ) -> MemberLoginResponse:
    """Every member (owner, admin, manager, employee) logs in here and gets the same token
    as /admin/login gives. Throttled as /admin/login; a suspended member gets 403
    `member_suspended`; with REQUIRE_VERIFIED_EMAIL, an unverified email 403
    `email_unverified`."""
    return await services.auth.member_login(body.email, body.password, auditor)


@router.get("/me", response_model=AdminPublic, responses=responses(Unauthorized, Forbidden))
async def me(tenant: CurrentTenant) -> AdminPublic:
    """The calling member and their organization."""
    return AuthService.me(tenant)
