"""A flood of identical refused events from strangers is one audit entry with a count, not one
entry per request; what an authenticated admin did is still one entry per event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from org_service.audit.repository import AuditRepository
from org_service.audit.service import AuditLog, RequestInfo
from tests.helpers import create_org

WINDOW = 60  # AUDIT_COLLAPSE_SECONDS's default, which the session app runs with


class Clock:
    """The audit log's clock: starts at the beginning of a collapse window, 1 ms a reading."""

    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now

    def next_window(self) -> None:
        self.now += timedelta(seconds=WINDOW)


@pytest.fixture
def clock(services: Any, monkeypatch: pytest.MonkeyPatch) -> Clock:
    # Pinned so that a burst never straddles two windows however slow the machine is.
    fake = Clock()
    monkeypatch.setattr(services.audit, "clock", fake)
    return fake


@pytest.fixture
async def other_address(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("198.51.100.9", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def entries(master: Any, **query: Any) -> list[dict[str, Any]]:
    return await master["audit_log"].find(query).sort("_id", 1).to_list(None)


def attempt(client: httpx.AsyncClient, email: str) -> Callable[[], Any]:
    return lambda: client.post("/admin/login", json={"email": email, "password": "wrong-pw"})


async def test_a_flood_of_throttled_logins_is_one_entry_per_address(
        client: httpx.AsyncClient, other_address: httpx.AsyncClient, master: Any,
        clock: Clock) -> None:
    org = await create_org(client, "Flooded")
    for _ in range(5):  # LOGIN_MAX_FAILURES_PER_EMAIL: then every attempt is throttled
        assert (await attempt(client, org.email)()).status_code == 401
    for _ in range(30):
        assert (await attempt(client, org.email)()).status_code == 429
    # Another address has limits of its own for the email (the owner is not locked out).
    for _ in range(5):
        assert (await attempt(other_address, org.email.upper())()).status_code == 401
    for _ in range(3):
        assert (await attempt(other_address, org.email.upper())()).status_code == 429

    here, there = await entries(master, action="admin.login", outcome="throttled")
    assert here["client_address"] == "203.0.113.7" and here["count"] == 30
    assert there["client_address"] == "198.51.100.9" and there["count"] == 3
    assert here["reason"] == there["reason"] == "too_many_requests"
    assert here["at"] < here["last_at"]
    failed = await entries(master, action="admin.login", outcome="failure")
    assert [f["count"] for f in failed] == [5, 5]


async def test_the_audit_listing_shows_the_count(client: httpx.AsyncClient, master: Any,
                                                 clock: Clock) -> None:
    org = await create_org(client, "Listed")
    for _ in range(4):
        await attempt(client, org.email)()
    listed = (await client.get("/org/audit", headers=org.auth)).json()["entries"]
    failures = [e for e in listed if e["outcome"] == "failure"]
    successes = [e for e in listed if e["outcome"] == "success"]
    assert [e["count"] for e in failures] == [4]
    assert failures[0]["last_at"] > failures[0]["at"]
    assert successes and all(e["count"] == 1 for e in successes)


async def test_concurrent_identical_events_collapse_into_one_entry(
        client: httpx.AsyncClient, master: Any, clock: Clock) -> None:
    for _ in range(5):
        await attempt(client, "nobody@example.com")()
    answers = await asyncio.gather(*(attempt(client, "nobody@example.com")()
                                     for _ in range(20)))
    assert {a.status_code for a in answers} == {429}
    [entry] = await entries(master, action="admin.login", outcome="throttled")
    assert entry["count"] == 20


async def test_two_api_processes_collapse_into_the_same_entry(
        services: Any, raw_client: AsyncMongoClient[Any], settings: Any, master: Any,
        clock: Clock) -> None:
    # A second process: its own client, repository and audit log on the same database.
    other = AuditLog(AuditRepository(raw_client[settings.MASTER_DB_NAME]),
                     services.audit.cursors, collapse_seconds=WINDOW, clock=clock)
    info = RequestInfo(client_address="192.0.2.1", request_id="r1")
    await asyncio.gather(*(log.record(info, "admin.login", "throttled", target="x@example.com",
                                      reason="too_many_requests")
                           for _ in range(10) for log in (services.audit, other)))
    [entry] = await entries(master, action="admin.login")
    assert entry["count"] == 20


async def test_a_new_window_starts_a_new_entry(client: httpx.AsyncClient, master: Any,
                                               clock: Clock) -> None:
    for _ in range(3):
        await attempt(client, "ghost@example.com")()
    clock.next_window()
    for _ in range(2):
        await attempt(client, "ghost@example.com")()
    assert [e["count"] for e in await entries(master, action="admin.login")] == [3, 2]


async def test_different_emails_are_different_entries(client: httpx.AsyncClient, master: Any,
                                                      clock: Clock) -> None:
    for email in ("a@example.com", "b@example.com", "A@Example.com"):
        await attempt(client, email)()
    counts = {e["target"].lower(): e["count"]
              for e in await entries(master, action="admin.login")}
    assert counts == {"a@example.com": 2, "b@example.com": 1}


async def test_a_flood_of_wrong_organization_headers_is_one_entry(
        client: httpx.AsyncClient, master: Any, clock: Clock) -> None:
    acme, globex = await create_org(client, "Acme"), await create_org(client, "Globex")
    for _ in range(10):
        answer = await client.get("/admin/me",
                                  headers={**acme.auth, "X-Organization-ID": globex.id})
        assert answer.status_code == 403
    [entry] = await entries(master, action="tenant.header_mismatch")
    assert entry["count"] == 10 and entry["organization_id"] == ObjectId(acme.id)


async def test_authenticated_actions_are_one_entry_per_event(
        client: httpx.AsyncClient, master: Any, clock: Clock) -> None:
    acme, globex = await create_org(client, "Acme"), await create_org(client, "Globex")
    for _ in range(3):
        await client.post("/admin/login", json={"email": acme.email, "password": acme.password})
    for _ in range(3):  # refused, but attempted by an authenticated admin: each one counts
        answer = await client.put("/org/update", headers=acme.auth, json={
            "old_organization_name": "Globex", "new_organization_name": "Mine"})
        assert answer.status_code == 403
    logins = await entries(master, action="admin.login", outcome="success",
                           organization_id=ObjectId(acme.id))
    denied = await entries(master, action="organization.update", outcome="denied")
    assert len(logins) == 4 and len(denied) == 3  # create_org logged in once already
    assert all(e["count"] == 1 for e in logins + denied)
    assert len({e["request_id"] for e in denied}) == 3
    assert globex.id not in {str(e["organization_id"]) for e in denied}
