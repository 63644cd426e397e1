from __future__ import annotations

from fastapi import APIRouter

from org_service.strict_json import StrictJSONRoute

# Routes: /org/records..., /org/export, /org/indexes (issue 5).
router = APIRouter(prefix="/org", tags=["Tenant records"], route_class=StrictJSONRoute)
