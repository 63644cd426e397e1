from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, WithJsonSchema
from pydantic.json_schema import SkipJsonSchema

from org_service.models import NOT_BLANK, Email, Password, RequestModel
from org_service.records.validation import RECORD_DATA_SCHEMA

RoleName = Literal["owner", "admin", "manager", "employee"]
MemberState = Literal["active", "suspended"]
MemberId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{24}$")]
PersonName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                              max_length=200), Field(json_schema_extra=NOT_BLANK)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
                  Field(json_schema_extra=NOT_BLANK)]
# A few small facts about a person (employee number, location...): the same key rules as
# records, at most ATTRIBUTES_MAX_BYTES as BSON.
Attributes = Annotated[dict[str, Any], WithJsonSchema(RECORD_DATA_SCHEMA), Field(description=(
    "Free-form facts about the member: keys never start with '$' and hold no '.' or NUL, "
    "at most 4 KiB as BSON"))]
ATTRIBUTES_MAX_BYTES = 4096
REPORTS_MAX_DEPTH = 32


class MemberCreate(RequestModel):
    email: Email
    password: Password
    name: PersonName
    role: RoleName = "employee"
    manager_id: MemberId | None = None
    title: Label | None = None
    department: Label | None = None
    attributes: Attributes = Field(default_factory=dict)


class MemberUpdate(RequestModel):
    """Only what is sent changes; `manager_id`, `title` and `department` may be null to
    clear them."""

    # A name can change, never go (null is a 422): the document shows no null for it.
    name: PersonName | SkipJsonSchema[None] = None
    role: RoleName | None = None
    manager_id: MemberId | None = None
    title: Label | None = None
    department: Label | None = None
    attributes: Attributes | None = None


class MeUpdate(RequestModel):
    """The caller's own account: name and title freely; email or password only with the
    current password."""

    name: PersonName | None = None
    title: Label | None = None
    email: Email | None = None
    password: Password | None = None
    current_password: str | None = Field(
        default=None, description="Required to change email or password")


class OwnershipTransfer(RequestModel):
    member_id: MemberId


class MemberPublic(BaseModel):
    id: str
    email: str
    name: str | None
    role: RoleName
    state: MemberState
    manager_id: str | None
    title: str | None
    department: str | None
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None
    verified_at: datetime | None = Field(description=(
        "When the member's email was proven (a verification link, an accepted "
        "invitation); null: not yet"))


class MeView(MemberPublic):
    """The caller as GET /me and PATCH /me show them: with an email change waiting for its
    link (the email above stays the login until the new address confirms)."""

    pending_email: str | None = Field(default=None, description=(
        "The address an email change waits on: it becomes the email once the link mailed "
        "to it is followed (POST /auth/verify-email)"))


class MemberPage(BaseModel):
    items: list[MemberPublic]
    next: str | None = Field(description="Pass as ?after= for the next page; null at the end")


class MemberCount(BaseModel):
    role: str
    state: str
    count: int


class Report(MemberPublic):
    depth: int = Field(description="1: reports directly; 2: to a direct report; ...")


class ReportList(BaseModel):
    items: list[Report]


def member_public(doc: dict[str, Any]) -> MemberPublic:
    manager = doc.get("manager_id")
    return MemberPublic(
        id=str(doc["_id"]), email=doc["email"], name=doc.get("name"), role=doc["role"],
        state=doc.get("state", "active"), manager_id=str(manager) if manager else None,
        title=doc.get("title"), department=doc.get("department"),
        attributes=doc.get("attributes") or {}, created_at=doc["created_at"],
        updated_at=doc.get("updated_at", doc["created_at"]),
        last_login_at=doc.get("last_login_at"), verified_at=doc.get("verified_at"))
