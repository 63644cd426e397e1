from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from org_service.models import RequestModel


class RefreshRequest(RequestModel):
    # Loose on purpose, as a login's password: a malformed token is just an unknown one.
    refresh_token: str = Field(max_length=512)


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds the access token is valid for")


class SessionPublic(BaseModel):
    id: str
    created_at: datetime
    last_used_at: datetime = Field(description="The login, or the latest refresh")
    expires_at: datetime = Field(description="The latest it can end (SESSION_MAX_DAYS)")
    idle_expires_at: datetime = Field(
        description="When it ends unless refreshed before (SESSION_IDLE_DAYS)")
    client_address: str | None
    user_agent: str | None
    current: bool = Field(description="Whether this is the session of the calling token")


class SessionList(BaseModel):
    sessions: list[SessionPublic]


class SessionsEnded(BaseModel):
    ended: int
