from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from org_service.audit.schemas import AuditPage
from org_service.deps import ServicesDep
from org_service.errors import Forbidden, Unauthorized, responses
from org_service.strict_json import StrictJSONRoute
from org_service.tenancy import CurrentTenant

AUDIT_PAGE_MAX = 200
PageLimit = Annotated[int, Query(ge=1, le=AUDIT_PAGE_MAX, description="1-200 entries")]
Cursor = Annotated[str | None, Query(
    max_length=2048, description="The `next_cursor` of the previous page; omit for the newest")]

router = APIRouter(prefix="/org", tags=["Audit"], route_class=StrictJSONRoute)


@router.get("/audit", response_model=AuditPage, responses=responses(Unauthorized, Forbidden))
async def list_audit(tenant: CurrentTenant, services: ServicesDep, limit: PageLimit = 50,
                     before: Cursor = None) -> AuditPage:
    """The caller's organization's audit trail, newest first; pass `next_cursor` back as
    `before` for the next page."""
    return await services.audit.page(tenant.organization_id, limit=limit, before=before)
