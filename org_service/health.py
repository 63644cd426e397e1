from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pymongo.errors import PyMongoError

from org_service.deps import ServicesDep
from org_service.errors import ErrorResponse

router = APIRouter(tags=["Health"])


class Health(BaseModel):
    status: Literal["ok"] = "ok"


@router.get("/health", response_model=Health)
async def health() -> Health:
    """The process is alive (it does not touch the database)."""
    return Health()


@router.get("/ready", response_model=Health,
            responses={503: {"model": ErrorResponse, "description": "Database down"}})
async def ready(services: ServicesDep) -> Health | JSONResponse:
    """The database answers a ping."""
    try:
        await services.mongo.ping()
    except PyMongoError:
        return JSONResponse(
            {"error": "service_unavailable", "detail": "The database does not answer"},
            status_code=503,
            headers={"Retry-After": str(services.settings.RETRY_AFTER_SECONDS)},
        )
    return Health()
