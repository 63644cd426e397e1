from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

AuditAction = Literal[
    "admin.login",
    "admin.credentials_change",
    "organization.create",
    "organization.update",
    "organization.delete",
    "tenant.header_mismatch",
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


class AuditPage(BaseModel):
    entries: list[AuditEntry]
    next_cursor: str | None
