from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema

from org_service.members.schemas import MemberCount
from org_service.models import RequestModel
from org_service.pagination import DEFAULT_LIMIT, MAX_LIMIT, CursorText
from org_service.records.query import FILTER_SCHEMA, SORT_SCHEMA
from org_service.records.validation import FIELD_PATH_PATTERN
from org_service.segments import segment

KIND_PATTERN = r"^[a-z][a-z0-9_-]{0,63}$"
MAX_BULK_ITEMS = 1000
# The bulk route's own body limit (the app-wide MAX_BODY_BYTES stays 1 MiB for every other
# route). A route's limit is fixed when the route is declared, so this is a constant rather
# than a setting: 1,000 records of 16 KiB on average, the size of MongoDB's largest document.
BULK_MAX_BODY_BYTES = 16 * 1024 * 1024

Kind = Annotated[str, Path(pattern=KIND_PATTERN, description="Record kind, e.g. `employees`")]
# Only 24 hex digits route to a record: `/org/records/{kind}/bulk` is never a record "bulk".
RECORD_ID_PATTERN = segment("objectid", r"^[0-9a-fA-F]{24}$")
RecordId = Annotated[str, Path(pattern=RECORD_ID_PATTERN,
                               description="The record id (24 hex digits)")]
# If-Match: `*` (any version) or a version, as `3`, `"3"` or `W/"3"`, spaces around allowed.
IF_MATCH_PATTERN = r'^[ \t]*(\*|(W/)?"?([0-9]{1,18})"?)[ \t]*$'
IndexName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,47}$")]
KindName = Annotated[str, StringConstraints(pattern=KIND_PATTERN)]


class Record(BaseModel):
    id: str
    kind: str
    data: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime


class RecordPage(BaseModel):
    items: list[Record]
    next: str | None = Field(description="Cursor for the next page (pass as `after`); "
                                         "null on the last page")


class BulkCreated(BaseModel):
    count: int
    ids: list[str]


class KindCount(BaseModel):
    kind: str
    count: int


class KindList(BaseModel):
    kinds: list[KindCount]


class RecordQuery(RequestModel):
    # Validated by records/query.py (its messages name the exact place); documented by the
    # schemas written there from the same constants (a bare `$ref` here would be taken
    # for one of pydantic's own definitions, hence the allOf).
    filter: Annotated[dict[str, Any], WithJsonSchema({"allOf": [FILTER_SCHEMA]})] = Field(
        default_factory=dict,
        description="MongoDB-style filter over data fields: $eq $ne $gt $gte $lt $lte $in $nin "
                    "$exists $and $or $not, and $regex as an anchored literal prefix only",
        examples=[{"department": "sales", "age": {"$gte": 30}}])
    sort: Annotated[dict[str, Any] | None, WithJsonSchema(SORT_SCHEMA)] = Field(
        default=None, description="One of created_at, updated_at, id: 1 or -1",
        examples=[{"created_at": -1}])
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    after: CursorText | None = None


PolicyRole = Literal["owner", "admin", "manager", "employee"]


def _writers_read(schema: dict[str, Any]) -> None:
    # The rule set_policy enforces, for the document: a role in `write` is in `read` too
    # (owners and admins are added to both, so only the other roles are stated).
    schema["allOf"] = [
        {"if": {"properties": {"write": {"contains": {"const": role}}}, "required": ["write"]},
         "then": {"properties": {"read": {"contains": {"const": role}}},
                  "required": ["read"]}}
        for role in get_args(PolicyRole) if role not in ("owner", "admin")]


class RecordPolicy(RequestModel):
    """Who reads and who writes a kind's records (owners and admins always do both)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_writers_read)

    read: list[PolicyRole] = Field(max_length=4, description="Roles that read this kind")
    write: list[PolicyRole] = Field(max_length=4, description=(
        "Roles that write this kind; each must also read it"))


class KindPolicy(RecordPolicy):
    kind: str
    default: bool = Field(description="True while no policy was set: the default applies")


class CollectionSize(BaseModel):
    name: str
    bytes: int = Field(description="Size of the documents, as the database reports it")
    documents: int


class RecordStats(BaseModel):
    kinds: list[KindCount]
    collection: CollectionSize


class OrganizationStats(BaseModel):
    members: list[MemberCount]
    records: list[KindCount]
    collection: CollectionSize


class IndexField(RequestModel):
    path: str = Field(min_length=1, max_length=256, description="Dotted path into data",
                      json_schema_extra={"pattern": FIELD_PATH_PATTERN})
    order: Literal[1, -1] = 1


class IndexCreate(RequestModel):
    name: IndexName
    kind: KindName
    fields: list[IndexField] = Field(
        min_length=1, max_length=4, json_schema_extra={"uniqueItems": True},
        description="Each path at most once: the same path twice, in either order, is a 409 "
                    "(no schema can compare the items' paths)")


class IndexInfo(BaseModel):
    name: str
    kind: str
    fields: list[IndexField]
    state: Literal["ready", "building"]


class IndexList(BaseModel):
    indexes: list[IndexInfo]
    limit: int
