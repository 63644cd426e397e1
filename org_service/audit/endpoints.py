from __future__ import annotations

from fastapi import APIRouter

from org_service.audit.schemas import AuditPage
from org_service.deps import ServicesDep
from org_service.errors import Forbidden, Unauthorized, responses
from org_service.pagination import Cursor, PageLimit
from org_service.strict_json import StrictJSONRoute
from org_service.tenancy import CurrentTenant

router = APIRouter(prefix="/org", tags=["Audit"], route_class=StrictJSONRoute)


@router.get("/audit", response_model=AuditPage, responses=responses(Unauthorized, Forbidden))
async def list_audit(tenant: CurrentTenant, services: ServicesDep, limit: PageLimit = 50,
                     before: Cursor = None) -> AuditPage:
    """The caller's organization's audit trail, newest first; pass `next_cursor` back as
    `before` for the next page."""
    return await services.audit.page(tenant.organization_id, limit=limit, before=before)
