"""At most MAX_TENANT_REQUESTS_IN_FLIGHT requests of one organization at a time in this
process, so one tenant cannot take the whole process (its event loop, its connections,
its memory) from the others.

A request is admitted when its tenant context is resolved (the organization is known only
then) and leaves when its response is over, a streamed export included: the middleware
outside everything else releases it after the last byte is sent or the client went away."""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from org_service.errors import TooManyRequests

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
