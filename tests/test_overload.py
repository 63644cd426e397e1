"""Past MAX_REQUESTS_IN_FLIGHT running and REQUEST_QUEUE_LIMIT waiting, a request is
answered 503 with Retry-After at once, reads and writes nothing, and health checks still
answer. Requests held in flight by an event the test controls (no timing)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import bcrypt
import pytest
from fastapi import APIRouter
from pymongo import AsyncMongoClient

from org_service.admission import RequestAdmission
from tests.helpers import create_org, until
from tests.organizations.lifecycle_support import Running, running

OVERLOAD_DB = "org_service_overload"


class Gate:
    """A route that stays in flight until the test opens the gate."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.router = APIRouter()

        @self.router.get("/test/held")
        async def held() -> dict[str, bool]:
            await self.open.wait()
            return {"held": True}


@asynccontextmanager
async def overloadable(settings: Any, raw_client: AsyncMongoClient[Any], **limits: Any
                       ) -> AsyncIterator[tuple[Running, Gate, RequestAdmission]]:
    await raw_client.drop_database(OVERLOAD_DB)
    gate = Gate()
    async with running(settings.model_copy(update={"MASTER_DB_NAME": OVERLOAD_DB, **limits}),
                       extra=gate.router) as app:
        try:
            yield app, gate, app.app.request_admission
        finally:
            gate.open.set()


async def test_past_the_bound_a_request_gets_503_with_retry_after_and_writes_nothing(
        settings: Any, raw_client: AsyncMongoClient[Any]) -> None:
    async with overloadable(settings, raw_client, MAX_REQUESTS_IN_FLIGHT=1,
                            REQUEST_QUEUE_LIMIT=0) as (app, gate, admission):
        http = app.http
        held = asyncio.create_task(http.get("/test/held"))
        await until(lambda: admission.in_flight == 1)

        started = time.monotonic()
        refused = await http.post("/org/create", json={
            "organization_name": "Shed Co", "email": "admin@shed.example.com",
            "password": "secure123"})
        refused_after = time.monotonic() - started
        health = await http.get("/health")
        metrics = await http.get("/metrics")

        gate.open.set()
        assert (await held).status_code == 200

        assert refused.status_code == 503, refused.text
        assert refused.json() == {"error": "overloaded",
                                  "detail": "The server is at capacity; retry shortly"}
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["X-Request-ID"]  # logged and traceable like any answer
        assert refused_after < 1  # at once: nothing waited for the held request
        assert health.status_code == 200  # an overloaded process still says it is alive
        assert "requests_shed_total 1.0" in metrics.text
        assert admission.in_flight == 0 and admission.shed == 1
        # The refused create wrote nothing: the name is free and nobody can log in.
        assert (await http.post("/org/get", json={"organization_name": "Shed Co"})
                ).status_code == 404
        await create_org(http, "Shed Co", "admin@shed.example.com")


async def test_a_queued_request_waits_its_turn_and_one_past_the_queue_is_refused(
        settings: Any, raw_client: AsyncMongoClient[Any]) -> None:
    async with overloadable(settings, raw_client, MAX_REQUESTS_IN_FLIGHT=1,
                            REQUEST_QUEUE_LIMIT=1, REQUEST_QUEUE_TIMEOUT_MS=30_000
                            ) as (app, gate, admission):
        http = app.http
        org = await create_org(http, "Queue Co")
        held = asyncio.create_task(http.get("/test/held"))
        await until(lambda: admission.in_flight == 1)
        queued = asyncio.create_task(http.get("/admin/me", headers=org.auth))
        await until(lambda: admission.queued == 1)

        refused = await http.get("/admin/me", headers=org.auth)
        assert not queued.done()
        gate.open.set()

        assert refused.status_code == 503 and int(refused.headers["Retry-After"]) >= 1
        assert (await held).status_code == 200
        assert (await queued).status_code == 200
        assert (admission.in_flight, admission.queued, admission.shed) == (0, 0, 1)


async def test_a_request_that_waited_past_the_queue_timeout_is_refused(
        settings: Any, raw_client: AsyncMongoClient[Any]) -> None:
    async with overloadable(settings, raw_client, MAX_REQUESTS_IN_FLIGHT=1,
                            REQUEST_QUEUE_LIMIT=8, REQUEST_QUEUE_TIMEOUT_MS=50
                            ) as (app, gate, admission):
        held = asyncio.create_task(app.http.get("/test/held"))
        await until(lambda: admission.in_flight == 1)
        refused = await app.http.get("/admin/me")
        gate.open.set()
        assert refused.status_code == 503 and refused.json()["error"] == "overloaded"
        assert (await held).status_code == 200
        assert (admission.in_flight, admission.queued, admission.shed) == (0, 0, 1)


# The gate itself, without HTTP.

async def test_waiters_are_let_in_first_come_first_served() -> None:
    admission = RequestAdmission(limit=1, queue_limit=10, queue_timeout=30)
    assert await admission.enter()
    order: list[int] = []

    async def waiter(n: int) -> None:
        assert await admission.enter()
        order.append(n)
        admission.leave()

    waiters = []
    for n in range(5):
        waiters.append(asyncio.create_task(waiter(n)))
        await until(lambda n=n: admission.queued == n + 1)
    admission.leave()
    await asyncio.gather(*waiters)
    assert order == [0, 1, 2, 3, 4]
    assert (admission.in_flight, admission.queued) == (0, 0)


@pytest.mark.parametrize("how", ["timeout", "cancelled"])
async def test_a_waiter_that_gives_up_takes_no_slot_with_it(how: str) -> None:
    admission = RequestAdmission(limit=1, queue_limit=10,
                                 queue_timeout=0.05 if how == "timeout" else 30)
    assert await admission.enter()
    gone = asyncio.create_task(admission.enter())
    await until(lambda: admission.queued == 1)
    if how == "cancelled":  # the client went away while it waited
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
    else:
        assert await gone is False
    after = asyncio.create_task(admission.enter())
    await asyncio.sleep(0)
    admission.leave()  # the slot skips the one that gave up
    assert await after is True
    admission.leave()
    assert (admission.in_flight, admission.queued) == (0, 0)


async def test_requests_waiting_for_a_password_hash_leave_their_slots_to_others(
        settings: Any, raw_client: AsyncMongoClient[Any], monkeypatch: Any) -> None:
    # Two slots, two places in line: four logins get in only if those hashing step out.
    async with overloadable(settings, raw_client, MAX_REQUESTS_IN_FLIGHT=2,
                            REQUEST_QUEUE_LIMIT=2, REQUEST_QUEUE_TIMEOUT_MS=30_000
                            ) as (app, _gate, admission):
        http, hasher = app.http, app.services.hasher
        org = await create_org(http, "Hash Co")
        hashing = threading.Event()
        real_checkpw = bcrypt.checkpw

        def held_checkpw(*args: Any) -> bool:
            hashing.wait(10)
            return bool(real_checkpw(*args))

        monkeypatch.setattr(bcrypt, "checkpw", held_checkpw)
        logins = [asyncio.create_task(http.post("/admin/login", json={
            "email": org.email, "password": org.password})) for _ in range(4)]
        await until(lambda: hasher.in_flight == 4)

        me = await http.get("/admin/me", headers=org.auth)
        hashing.set()
        assert [r.status_code for r in await asyncio.gather(*logins)] == [200] * 4

        assert me.status_code == 200, me.text  # four logins hashing, two slots: not 503
        assert (admission.in_flight, admission.shed) == (0, 0)
