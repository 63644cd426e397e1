from __future__ import annotations

from pydantic import BaseModel

from org_service.links import LinkToken
from org_service.models import Email, Password, RequestModel


class PasswordResetRequest(RequestModel):
    email: Email


class PasswordResetAccepted(BaseModel):
    """The one answer to every request, whatever the email: it tells nothing."""

    detail: str


class PasswordResetConfirm(RequestModel):
    token: LinkToken
    password: Password
