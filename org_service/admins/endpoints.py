from __future__ import annotations

from fastapi import APIRouter

from org_service.admins.schemas import AdminPublic, LoginRequest, LoginResponse
from org_service.admins.service import AdminService
from org_service.deps import CurrentAuditor, CurrentTenant, ServicesDep
from org_service.errors import Forbidden, TooManyRequests, Unauthorized, responses
from org_service.strict_json import StrictJSONRoute

router = APIRouter(prefix="/admin", tags=["Admin auth"], route_class=StrictJSONRoute)


@router.post("/login", response_model=LoginResponse,
             responses=responses(Unauthorized, TooManyRequests))
async def login(body: LoginRequest, services: ServicesDep, auditor: CurrentAuditor
                ) -> LoginResponse:
    """Exchange an admin's email and password for a bearer token. Repeated failures for one
    email or from one address are throttled (429 with Retry-After)."""
    return await services.admins.login(body.email, body.password, auditor)


@router.get("/me", response_model=AdminPublic, responses=responses(Unauthorized, Forbidden))
async def me(tenant: CurrentTenant) -> AdminPublic:
    """The calling admin and their organization."""
    return AdminService.me(tenant)
