"""The tenant context of a record read by id, with the record read in the same round trip
as the token's admin and organization (the commonest tenant request costs one command)."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Request

from org_service.db import Document
from org_service.organizations.repository import object_id
from org_service.records.repository import by_id
from org_service.records.schemas import KIND_PATTERN
from org_service.tenancy import TenantBearer, TenantContext

KIND = re.compile(KIND_PATTERN)


def record_in_path(request: Request) -> Document | None:
    """The read of GET /org/records/{kind}/{record_id}, from the raw path parameters.

    Not the validated ones: the token is checked before the path (a caller without a valid
    token learns nothing of it), so a bad kind or id only means nothing to prefetch, and the
    route's own validation answers for it afterwards."""
    kind, oid = request.path_params.get("kind"), object_id(request.path_params.get("record_id"))
    return by_id(kind, oid) if oid and isinstance(kind, str) and KIND.fullmatch(kind) else None


tenant_reading_record = TenantBearer(prefetch=record_in_path)
TenantReadingRecord = Annotated[TenantContext, Depends(tenant_reading_record)]
