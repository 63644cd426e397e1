"""Building blocks shared by every request and response schema."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, StringConstraints

from org_service.security import PASSWORD_MAX, PASSWORD_MIN


class RequestModel(BaseModel):
    """Unknown fields are refused (422), so nobody can slip in `role` or `organization_id`."""

    model_config = ConfigDict(extra="forbid")


Password = Annotated[str, StringConstraints(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)]
Email = Annotated[EmailStr, StringConstraints(max_length=254)]


def email_key(email: str) -> str:
    """Emails are unique case-insensitively: this is the form the unique index holds."""
    return email.strip().casefold()


def mask_email(email: str) -> str:
    """j***@example.com: enough for its owner to recognise, not for others to learn."""
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}***@{domain}"
