from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from org_service.audit.schemas import AuditPage
from org_service.deps import AuditReader, ServicesDep
from org_service.errors import BadRequest, Forbidden, NotFound, Unauthorized, responses
from org_service.pagination import CursorText
from org_service.strict_json import StrictJSONRoute

AUDIT_PAGE_MAX = 200
PageLimit = Annotated[int, Query(ge=1, le=AUDIT_PAGE_MAX, description="1-200 entries")]
Cursor = Annotated[CursorText | None, Query(
    description="The `next` of the previous page; omit for the newest")]
# Still read, no longer documented: with both names in the document a generated client
# may send both, which is a 400 no schema can state.
OldCursor = Annotated[CursorText | None, Query(
    include_in_schema=False, description="The same as `after` (its first name)")]

router = APIRouter(prefix="/org", tags=["Audit"], route_class=StrictJSONRoute)


@router.get("/audit", response_model=AuditPage,
            responses=responses(BadRequest, Unauthorized, Forbidden, NotFound))
async def list_audit(tenant: AuditReader, services: ServicesDep, limit: PageLimit = 50,
                     after: Cursor = None, before: OldCursor = None) -> AuditPage:
    """The caller's organization's audit trail, newest first; pass `next` back as `after`
    for the next page (as with records). `before` and `next_cursor` are the same cursor
    under the names this route had first."""
    if after is not None and before is not None and after != before:
        raise BadRequest("Pass the cursor as `after` (or, as before, `before`), not both")
    return await services.audit.page(tenant.organization_id, limit=limit,
                                     after=after if after is not None else before)
