from __future__ import annotations

from fastapi import APIRouter

from org_service.strict_json import StrictJSONRoute

# Routes: GET /org/audit (issue 3).
router = APIRouter(prefix="/org", tags=["Audit"], route_class=StrictJSONRoute)
