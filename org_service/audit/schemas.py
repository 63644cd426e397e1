from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

AuditAction = Literal[
    "admin.login",
    "admin.credentials_change",
    "organization.create",
    "organization.update",
    "organization.delete",
    # By an operator (org-service restore-deleted) and the purge sweep: no request, no admin.
    "organization.restore",
    # The one entry of an organization a purge keeps: what was purged, and when.
    "organization.purge",
    "tenant.header_mismatch",
    "member.create",
    "member.update",
    "member.role_change",
    "member.suspend",
    "member.reactivate",
    "member.remove",
    "member.ownership_transfer",
    "member.self_update",
    "records.policy_change",
    "session.refresh_reuse",
    "session.logout",
    "session.revoke",
    "invitation.create",
    "invitation.resend",
    "invitation.revoke",
    "invitation.accept",
    # reason: queued, superseded, unknown_email or inactive (never shown to the caller)
    "password_reset.request",
    "password_reset.complete",
    # reason: queued, superseded, unknown_email, inactive or verified (the public resend's
    # reason is never shown to the caller)
    "email_verification.send",
    "email_verification.confirm",
    "email_change.request",
    "email_change.confirm",
]
# denied: refused by an authorization rule (a cross-tenant attempt); failure: anything else.
AuditOutcome = Literal["success", "failure", "denied", "throttled"]


class AuditEntry(BaseModel):
    id: str
    at: datetime
    action: AuditAction
    outcome: AuditOutcome
    admin_id: str | None
    organization_id: str | None
    target: str | None
    reason: str | None
    client_address: str | None
    request_id: str
    # Identical refused attempts by strangers within AUDIT_COLLAPSE_SECONDS are one entry:
    # `at` and `request_id` are the first's, `last_at` the last's, `count` how many.
    count: int = Field(ge=1)
    last_at: datetime


class AuditPage(BaseModel):
    entries: list[AuditEntry]
    # The one pagination vocabulary (as the records' pages): pass `next` back as `after`.
    next: str | None
    next_cursor: str | None = Field(
        deprecated=True, description="The same as `next` (the name this page had first)")
