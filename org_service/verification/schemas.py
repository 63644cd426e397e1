from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from org_service.links import LinkToken
from org_service.models import Email, RequestModel


class VerifyEmail(RequestModel):
    token: LinkToken


class VerificationResend(RequestModel):
    email: Email


class VerificationAccepted(BaseModel):
    """The one answer of the public resend, whatever the email: it tells nothing."""

    detail: str


class VerificationSent(BaseModel):
    detail: str
    email: str = Field(description="The address the link went to")


class EmailVerified(BaseModel):
    email: str = Field(description="The member's email, now verified")
    verified_at: datetime
    email_changed: bool = Field(description=(
        "True when the link was an email change's: every session of the member ended; "
        "log in with this email"))
