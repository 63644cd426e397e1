from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from org_service.audit.schemas import AuditPage
from org_service.deps import AuditReader, ServicesDep
from org_service.errors import BadRequest, Forbidden, Unauthorized, responses
from org_service.strict_json import StrictJSONRoute

AUDIT_PAGE_MAX = 200
PageLimit = Annotated[int, Query(ge=1, le=AUDIT_PAGE_MAX, description="1-200 entries")]
Cursor = Annotated[str | None, Query(
    max_length=2048, description="The `next` of the previous page; omit for the newest")]
OldCursor = Annotated[str | None, Query(
    max_length=2048, deprecated=True, description="The same as `after` (its first name)")]

router = APIRouter(prefix="/org", tags=["Audit"], route_class=StrictJSONRoute)


@router.get("/audit", response_model=AuditPage,
            responses=responses(BadRequest, Unauthorized, Forbidden))
async def list_audit(tenant: AuditReader, services: ServicesDep, limit: PageLimit = 50,
                     after: Cursor = None, before: OldCursor = None) -> AuditPage:
    """The caller's organization's audit trail, newest first; pass `next` back as `after`
    for the next page (as with records). `before` and `next_cursor` are the same cursor
    under the names this route had first."""
    if after is not None and before is not None and after != before:
        raise BadRequest("Pass the cursor as `after` (or, as before, `before`), not both")
    return await services.audit.page(tenant.organization_id, limit=limit,
                                     after=after if after is not None else before)
