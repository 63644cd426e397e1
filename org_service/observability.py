"""Request logs, request ids and Prometheus metrics.

One pure ASGI middleware (no BaseHTTPMiddleware: it adds a task and a stream per request)
stamps every request with an id, times it, counts it and writes one JSON log line.
PyMongo's command monitoring feeds the database latency histogram; `/metrics` exposes it all.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pymongo import monitoring
from pymongo.errors import PyMongoError
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from org_service.admission import RequestAdmission
from org_service.errors import internal_error_response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID_HEADER = "X-Request-ID"
# Ids from clients and proxies are echoed into headers and logs: bounded, no spaces or
# control characters, so they can neither split a header nor forge a log field.
REQUEST_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:+=/-]{0,127}$"
_VALID_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)
# Unmatched paths share one label: a scanner must not create one time series per URL.
UNMATCHED_ROUTE = "<unmatched>"
access_log = logging.getLogger("org_service.access")
log = logging.getLogger(__name__)


# "uvicorn.error" has no handler of its own: it propagates to "uvicorn".
UVICORN_LOGGERS = ("uvicorn", "uvicorn.access")


def configure_logging(level: int = logging.INFO) -> None:
    """JSON lines on stdout for everything the `org_service` loggers say, and for uvicorn's
    own lines too (idempotent)."""
    # Our lines carry none of these, yet every LogRecord would gather them: the caller's
    # file and line (a stack walk), thread, process and multiprocessing names. Switched off
    # as the logging HOWTO's "Optimization" section describes; about 60 µs of CPU per
    # request's access line, measured in-process.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logger = logging.getLogger("org_service")
    logger.setLevel(level)
    _log_json_only(logger)
    # uvicorn configured its loggers before it imported the app, with plain-text handlers on
    # stderr: replaced here, before it says "Started server process", so whoever reads this
    # process's output gets one format. uvicorn keeps its own levels.
    for name in UVICORN_LOGGERS:
        uvicorn_logger = logging.getLogger(name)
        _log_json_only(uvicorn_logger)
        uvicorn_logger.propagate = False


def _log_json_only(logger: logging.Logger) -> None:
    if any(getattr(h, "_org_service_json", False) for h in logger.handlers):
        return
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(json_formatter())
    handler._org_service_json = True  # type: ignore[attr-defined]
    logger.addHandler(handler)


def json_formatter() -> JsonFormatter:
    return JsonFormatter("{asctime}{levelname}{name}{message}", style="{",
                         rename_fields={"asctime": "time", "levelname": "level",
                                        "name": "logger"},
                         # uvicorn adds an ANSI-coloured copy of its message to each record.
                         reserved_attrs=[*RESERVED_ATTRS, "color_message"])


def accepted_request_id(value: str | None) -> str:
    """The caller's X-Request-ID when it is sane, else a fresh one."""
    if value is not None and _VALID_REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


class Metrics:
    """This app's Prometheus registry (one per app, so tests may build several apps)."""

    def __init__(self, *, organizations_max_age: float = 15,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = CollectorRegistry()
        labels = ("method", "route", "status")
        self.requests = Counter("http_requests", "HTTP requests answered", labels,
                                registry=self.registry)
        self.latency = Histogram("http_request_duration_seconds",
                                 "Time from request to the end of the response", labels,
                                 registry=self.registry)
        self.db_latency = Histogram(
            "mongodb_command_duration_seconds", "MongoDB command round trips",
            ("command", "outcome"),
            buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10),
            registry=self.registry)
        self.organizations = Gauge("organizations", "Organizations in the master database",
                                   registry=self.registry)
        ProcessCollector(registry=self.registry)
        self.command_listener = CommandMetrics(self.db_latency)
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.organizations_max_age = organizations_max_age
        self.clock = clock
        self._organizations_counted_at: float | None = None
        self._organizations_refresh = asyncio.Lock()

    def watch_admission(self, admission: RequestAdmission) -> None:
        """Requests in flight, waiting and shed by the process-wide admission control."""
        self.registry.register(_AdmissionCollector(admission))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            # Label lookups lock and hash every call; routes x methods x statuses is small.
            labels = (method, route, str(status))
            children = self._children[key] = (self.requests.labels(*labels),
                                              self.latency.labels(*labels))
        children[0].inc()
        children[1].observe(seconds)

    def _organizations_fresh(self) -> bool:
        counted = self._organizations_counted_at
        return counted is not None and self.clock() - counted < self.organizations_max_age

    async def refresh_organizations(self, count: Callable[[], Awaitable[int]]) -> None:
        """Recount the organizations gauge if the last count is older than the max age.

        Anyone who can reach /metrics can scrape it as often as they like: the count reads
        the organizations collection, so it runs at most once per max age in this process,
        and scrapes arriving while it runs wait for that one count instead of starting
        their own."""
        if self._organizations_fresh():
            return
        async with self._organizations_refresh:
            if self._organizations_fresh():
                return  # counted by the scrape we waited for
            try:
                self.organizations.set(await count())
            except PyMongoError as exc:
                # Metrics matter most during an outage: serve the rest, keep the last count
                # (and do not retry before the max age: each try may wait for a timeout).
                log.warning("organizations count failed: %s", exc)
            finally:
                self._organizations_counted_at = self.clock()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _AdmissionCollector(Collector):
    def __init__(self, admission: RequestAdmission) -> None:
        self.admission = admission

    def collect(self) -> Iterator[Metric]:
        admission = self.admission
        yield GaugeMetricFamily("requests_in_flight", "Requests running (admitted)",
                                value=admission.in_flight)
        yield GaugeMetricFamily("requests_queued", "Requests waiting to be admitted",
                                value=admission.queued)
        yield CounterMetricFamily("requests_shed", "Requests answered 503 by admission "
                                  "control (bound and queue full, or waited too long)",
                                  value=admission.shed)


class CommandMetrics(monitoring.CommandListener):
    """PyMongo command monitoring → the database latency histogram."""

    def __init__(self, histogram: Histogram) -> None:
        self.histogram = histogram
        # As for requests: labels() locks and hashes; the driver's command names are few.
        self._children: dict[tuple[str, str], Any] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass  # the succeeded/failed events carry the duration

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._observe(event.command_name, "ok", event.duration_micros)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._observe(event.command_name, "error", event.duration_micros)

    def _observe(self, command: str, outcome: str, micros: int) -> None:
        key = (command, outcome)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.histogram.labels(command, outcome)
        child.observe(micros / 1e6)


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    # The template as documented (`{record_id}`), not as routed (`{record_id:objectid}`).
    if route is None:
        return UNMATCHED_ROUTE
    return str(getattr(route, "path_format", UNMATCHED_ROUTE))


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


class ObservabilityMiddleware:
    """Request id in and out, one JSON log line and the request metrics per HTTP request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = accepted_request_id(_header(scope, b"x-request-id"))
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        header = (REQUEST_ID_HEADER.lower().encode(), request_id.encode())
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # The server-error handler outside this middleware would answer without our
            # header: answer here, then let the exception go on to be logged.
            if not response_started:
                await internal_error_response()(scope, receive, send_with_id)
            raise
        finally:
            self._record(scope, state, request_id, status, time.perf_counter() - started)

    def _record(self, scope: Scope, state: dict[str, Any], request_id: str, status: int,
                seconds: float) -> None:
        method = scope["method"]
        route = _route_template(scope)
        self.metrics.observe_request(method, route, status, seconds)
        tenant = state.get("tenant")
        access_log.info("request", extra={
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "organization_id": getattr(tenant, "organization_id", None),
            "request_id": request_id,
        })
