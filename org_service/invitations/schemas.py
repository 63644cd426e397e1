from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from org_service.links import LinkToken
from org_service.members.schemas import MemberId, PersonName
from org_service.models import Email, Password, RequestModel

# Ownership moves only by transfer (POST /org/ownership/transfer), never by invitation.
InviteRole = Literal["admin", "manager", "employee"]
InvitationState = Literal["pending", "accepted", "expired", "revoked"]
InvitationId = MemberId
InvitationToken = LinkToken
EXPIRES_MIN_DAYS, EXPIRES_MAX_DAYS, EXPIRES_DEFAULT_DAYS = 1, 30, 7


class InvitationCreate(RequestModel):
    email: Email
    role: InviteRole = "employee"
    manager_id: MemberId | None = Field(default=None, description=(
        "Whom the new member will report to; a manager's invitations always name the "
        "manager"))
    expires_in_days: int = Field(default=EXPIRES_DEFAULT_DAYS, ge=EXPIRES_MIN_DAYS,
                                 le=EXPIRES_MAX_DAYS)


class InvitationPublic(BaseModel):
    id: str
    email: str
    role: str
    manager_id: str | None
    state: InvitationState = Field(description=(
        "A pending invitation past its expiry is `expired`"))
    created_at: datetime
    expires_at: datetime
    expires_in_days: int
    invited_by: str
    resent_at: datetime | None
    accepted_at: datetime | None
    member_id: str | None
    revoked_at: datetime | None
    revoked_by: str | None


class InvitationWithLink(InvitationPublic):
    accept_url: str | None = Field(description=(
        "The link to accept it, given once: when the invitation is made or resent (null "
        "when an invitation for this email was pending already)"))


class InvitationPage(BaseModel):
    items: list[InvitationPublic]
    next: str | None = Field(description="Pass as ?after= for the next page; null at the end")


class InvitationView(BaseModel):
    """What an accept page shows."""

    organization_name: str
    role: str
    email: str = Field(description="The invited email, partly masked (j***@example.com)")
    expires_at: datetime


class InvitationAccept(RequestModel):
    token: InvitationToken
    name: PersonName
    password: Password
