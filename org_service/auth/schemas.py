from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from org_service.models import RequestModel
from org_service.organizations.schemas import OrganizationPublic


class LoginRequest(RequestModel):
    # Deliberately loose: a malformed or over-long password is just a wrong one (401).
    email: str
    password: str


class LoginResponse(BaseModel):
    access_token: str
    # Opaque; POST /auth/refresh exchanges it for a new pair (each is good for one use).
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    admin_id: str
    organization_name: str
    email: str
    expires_in: int


class MemberLoginResponse(BaseModel):
    """What /auth/login answers: the same token as /admin/login, with who it is for."""

    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    member_id: str
    role: str
    organization_id: str
    organization_name: str
    email: str
    expires_in: int


class AdminPublic(BaseModel):
    admin_id: str
    email: str
    role: str
    organization: OrganizationPublic
