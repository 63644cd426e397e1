"""Health, readiness and metrics: what an orchestrator and a scraper ask of a process."""

from __future__ import annotations

import hmac
from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from pymongo.errors import PyMongoError

from org_service.deps import ServicesDep
from org_service.errors import ErrorResponse, ServiceUnavailable, Unauthorized
from org_service.observability import Metrics

router = APIRouter(tags=["Health"])


class Health(BaseModel):
    status: Literal["ok"] = "ok"


@router.get("/health", response_model=Health)
async def health() -> Health:
    """The process is alive (it does not touch the database)."""
    return Health()


@router.get("/ready", response_model=Health,
            responses={503: {"model": ErrorResponse, "description": "Database down"}})
async def ready(services: ServicesDep) -> Health:
    """The database answers a ping."""
    try:
        await services.mongo.ping()
    except PyMongoError:
        raise ServiceUnavailable("The database does not answer",
                                 retry_after=services.settings.RETRY_AFTER_SECONDS) from None
    return Health()


async def metrics_scraper(request: Request, services: ServicesDep) -> None:
    """With METRICS_TOKEN set, only `Authorization: Bearer <METRICS_TOKEN>` may scrape."""
    token = services.settings.METRICS_TOKEN
    if token is None:
        return
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    # Headers arrive decoded as latin-1: encoding back gives the bytes that were sent.
    # compare_digest: the time taken does not tell how much of a guess was right.
    if scheme.lower() != "bearer" or not hmac.compare_digest(
            credentials.strip().encode("latin-1"), token.get_secret_value().encode()):
        raise Unauthorized("GET /metrics needs the metrics bearer token")


@router.get("/metrics", response_class=Response, dependencies=[Depends(metrics_scraper)],
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}},
                             "description": "Prometheus text exposition"},
                       401: {"model": ErrorResponse,
                             "description": "METRICS_TOKEN is set and the request lacks it"}})
async def metrics(request: Request, services: ServicesDep) -> Response:
    """Prometheus metrics: requests, latencies, database command latency, organizations
    (counted at most once per METRICS_REFRESH_SECONDS). Public unless METRICS_TOKEN is set."""
    registry: Metrics = request.app.state.metrics
    await registry.refresh_organizations(services.organization_repository.count_active)
    return Response(registry.exposition(), media_type=CONTENT_TYPE_LATEST)
