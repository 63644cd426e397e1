"""Admission control, at two levels.

Per process (`RequestAdmission`, the `AdmitRequests` middleware): at most
MAX_REQUESTS_IN_FLIGHT requests run at once; up to REQUEST_QUEUE_LIMIT more wait their turn,
first come first served, each at most REQUEST_QUEUE_TIMEOUT_MS; any other is answered 503
with Retry-After at once, before its body is read. Measured cause (docs/benchmarks.md,
"Overload"): with every request let in, 256 concurrent requests mean 256 concurrent driver
operations, whose locks (the topology's and the pool's, each scanning its waiters on every
acquire), timers and a pool grown to a hundred connections cost up to ~40% more CPU per
request, and the event loop serves them in no particular order, so p99 reached a second
while the median stayed low. A small number in flight keeps the driver in its cheap regime,
and the FIFO queue makes every admitted request wait about the same.

Per organization (`TenantAdmission`): at most MAX_TENANT_REQUESTS_IN_FLIGHT requests of one
organization at a time in this process, so one tenant cannot take the whole process (its
event loop, its connections, its memory) from the others. A request is admitted when its
tenant context is resolved (the organization is known only then) and leaves when its
response is over, a streamed export included: the middleware outside everything else
releases it after the last byte is sent or the client went away."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from org_service.errors import TooManyRequests

OVERLOADED_DETAIL = "The server is at capacity; retry shortly"


class RequestAdmission:
    """A FIFO gate: `limit` requests inside, at most `queue_limit` waiting, none waiting
    longer than `queue_timeout` seconds. Entering and leaving are O(1): no waiter list is
    ever scanned (asyncio's own Semaphore scans its waiters on every acquire)."""

    def __init__(self, limit: int, queue_limit: int, queue_timeout: float) -> None:
        self.limit = limit
        self.queue_limit = queue_limit
        self.queue_timeout = queue_timeout
        self.in_flight = 0
        self.shed = 0  # requests refused since start (exposed as a metric)
        # Waiters in arrival order; those that gave up stay in it (cancelled) until `leave`
        # reaches them, so `queued` counts the ones still waiting.
        self._waiting: deque[asyncio.Future[None]] = deque()
        self.queued = 0

    async def enter(self) -> bool:
        """True once the request may run (call `leave` after it); False: shed it."""
        if self.in_flight < self.limit and not self.queued:
            self.in_flight += 1
            return True
        if self.queued >= self.queue_limit:
            self.shed += 1
            return False
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        self.queued += 1
        try:
            # On timeout wait_for cancels `turn`, unless it came in time (then it returns).
            await asyncio.wait_for(turn, self.queue_timeout)
        except TimeoutError:
            self.shed += 1
            return False
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.leave()  # the slot came with the cancellation: pass it on
            raise
        finally:
            if not turn.done() or turn.cancelled():
                self.queued -= 1  # gave up; a granted turn was counted out by `leave`
        return True

    def leave(self) -> None:
        """Hand the slot to the next waiter still waiting, else free it."""
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)  # in_flight unchanged: the slot passes on
                self.queued -= 1
                return
        self.in_flight -= 1


# The admission control that let the current request in (None: exempt, or not a request).
_admitted: ContextVar[RequestAdmission | None] = ContextVar("admitted", default=None)


@asynccontextmanager
async def outside_admission() -> AsyncIterator[None]:
    """While the current request waits for another bounded resource (a password hash: a
    thread, not the database), its slot serves other requests. It comes back in without
    queueing (it already had its turn), so the bound is exceeded by at most the number of
    such waits that end at the same moment."""
    admission = _admitted.get()
    if admission is None:
        yield
        return
    admission.leave()
    try:
        yield
    finally:
        admission.in_flight += 1


class AdmitRequests:
    """ASGI middleware in front of the routes: runs a request once `RequestAdmission` lets
    it in, else answers 503 + Retry-After without reading it. `exempt` paths (health
    checks, metrics) always run: an overloaded process must still say how it is."""

    def __init__(self, app: ASGIApp, admission: RequestAdmission, retry_after: int,
                 exempt: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.admission = admission
        self.exempt = exempt
        body = json.dumps({"error": "overloaded", "detail": OVERLOADED_DETAIL}).encode()
        self._start = {"type": "http.response.start", "status": 503, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(max(1, retry_after)).encode())]}
        self._body = {"type": "http.response.body", "body": body}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        if not await self.admission.enter():
            await send(dict(self._start))  # a copy: middleware outside adds headers to it
            await send(self._body)
            return
        admitted = _admitted.set(self.admission)
        try:
            await self.app(scope, receive, send)
        finally:
            _admitted.reset(admitted)
            self.admission.leave()

_ADMITTED = "admitted_organization"


class TenantAdmission:
    def __init__(self, limit: int, retry_after: int = 1) -> None:
        self.limit = limit
        self.retry_after = retry_after
        self._in_flight: dict[str, int] = {}

    def in_flight(self, organization_id: str) -> int:
        return self._in_flight.get(organization_id, 0)

    def enter(self, state: dict[str, Any], organization_id: str) -> None:
        """Count the request (its ASGI `state`) for the organization, or refuse it."""
        if not self.limit or _ADMITTED in state:  # resolved twice: counted once
            return
        count = self._in_flight.get(organization_id, 0)
        if count >= self.limit:
            raise TooManyRequests(
                f"This organization has {count} requests in progress; retry shortly",
                retry_after=self.retry_after)
        self._in_flight[organization_id] = count + 1
        state[_ADMITTED] = organization_id

    def leave(self, state: dict[str, Any]) -> None:
        organization_id = state.pop(_ADMITTED, None)
        if organization_id is None:
            return
        count = self._in_flight.get(organization_id, 0) - 1
        if count > 0:
            self._in_flight[organization_id] = count
        else:
            self._in_flight.pop(organization_id, None)


class ReleaseAdmission:
    """ASGI middleware: whatever happened, a request admitted for an organization leaves
    once the app is done with it (the response sent, or the client gone)."""

    def __init__(self, app: ASGIApp, admission: TenantAdmission) -> None:
        self.app = app
        self.admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        try:
            await self.app(scope, receive, send)
        finally:
            self.admission.leave(state)
