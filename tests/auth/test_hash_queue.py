"""At most cores - 1 password hashes run at once, and the queue is bounded: past
HASH_QUEUE_MAX waiting hashes, a request that needs one gets 503 with Retry-After at once,
and the hashes already queued still finish."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import bcrypt
import pytest

from org_service import security
from tests.helpers import app_with, client_for, create_org, login, until

QUEUE_MAX = 2


class HeldChecks:
    """bcrypt.checkpw held in its worker thread until `release()`; every hash and check
    is recorded in the order it started."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.released = threading.Event()
        self.started: list[str] = []
        self.real_checkpw, self.real_hashpw = bcrypt.checkpw, bcrypt.hashpw
        monkeypatch.setattr(bcrypt, "checkpw", self._checkpw)
        monkeypatch.setattr(bcrypt, "hashpw", self._hashpw)

    def _checkpw(self, password: bytes, hashed: bytes) -> bool:
        self.started.append("check")
        assert self.released.wait(timeout=60), "never released"
        return self.real_checkpw(password, hashed)

    def _hashpw(self, password: bytes, salt: bytes) -> bytes:
        self.started.append("hash")
        return self.real_hashpw(password, salt)

    def release(self) -> None:
        self.released.set()


class CountedChecks:
    """bcrypt.checkpw held in its worker thread until the test lets one through
    (`let_one_through`); counts how many run at the same time."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.permits = threading.Semaphore(0)
        self.lock = threading.Lock()
        self.started = self.finished = self.running = self.most_at_once = 0
        self.real_checkpw = bcrypt.checkpw
        monkeypatch.setattr(bcrypt, "checkpw", self._checkpw)

    def _checkpw(self, password: bytes, hashed: bytes) -> bool:
        with self.lock:
            self.started += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            assert self.permits.acquire(timeout=60), "never let through"
            return self.real_checkpw(password, hashed)
        finally:
            with self.lock:
                self.running -= 1
                self.finished += 1

    def let_one_through(self) -> None:
        self.permits.release()


def create_body(name: str) -> dict[str, str]:
    return {"organization_name": name, "password": "secure123",
            "email": f"admin@{name.lower().replace(' ', '-')}.example.com"}


async def test_hashes_past_the_queue_bound_get_503_at_once_and_queued_ones_complete(
        settings: Any, master: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(security, "_hashing_threads", lambda: 1)
    async with (app_with(settings, HASH_QUEUE_MAX=QUEUE_MAX, CREATE_MAX_PER_ADDRESS=1) as app,
                client_for(app) as http):
        hasher = app.state.services.hasher
        org = await create_org(http, "Acme")  # logs in once too (the dummy hash is made)
        held = HeldChecks(monkeypatch)
        # One login's check running in the only thread, QUEUE_MAX logins waiting for it...
        logins = [asyncio.create_task(http.post("/admin/login", json={
            "email": org.email, "password": org.password})) for _ in range(1 + QUEUE_MAX)]
        await until(lambda: hasher.in_flight == 1 + QUEUE_MAX)
        # ... and QUEUE_MAX creates (from their own addresses) waiting behind them.
        creators = [client_for(app, f"192.0.2.{n + 1}") for n in range(QUEUE_MAX)]
        creates = [asyncio.create_task(creator.post("/org/create", json=create_body(f"New {n}")))
                   for n, creator in enumerate(creators)]
        await until(lambda: hasher.in_flight == 1 + 2 * QUEUE_MAX)
        # Past the bound, everyone else is told to come back while those are still held.
        async with client_for(app, "198.51.100.9") as owner:
            for _ in range(6):
                refused = await owner.post("/admin/login", json={
                    "email": org.email, "password": org.password})
                assert refused.status_code == 503, refused.text
                assert refused.json()["error"] == "service_unavailable"
                assert int(refused.headers["Retry-After"]) >= 1
            refused = await owner.post("/org/create", json=create_body("Other"))
            assert refused.status_code == 503 and int(refused.headers["Retry-After"]) >= 1
            assert not any(task.done() for task in logins + creates)
            assert await master["organizations"].count_documents({}) == 1
            held.release()
            for response in await asyncio.gather(*logins):
                assert response.status_code == 200, response.text
            for response in await asyncio.gather(*creates):
                assert response.status_code == 201, response.text
            # The queued logins went ahead of the creates queued before them.
            assert held.started == ["check"] * (1 + QUEUE_MAX) + ["hash"] * QUEUE_MAX
            assert hasher.in_flight == 0
            # The refused attempts were not counted: no lockout, no create allowance spent.
            await login(owner, org.email, org.password)
            created = await owner.post("/org/create", json=create_body("Other"))
            assert created.status_code == 201, created.text
        for creator in creators:
            await creator.aclose()


async def test_a_rename_with_a_new_password_is_refused_too_and_changes_nothing(
        settings: Any, master: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(security, "_hashing_threads", lambda: 1)
    async with (app_with(settings, HASH_QUEUE_MAX=0) as app, client_for(app) as http):
        org = await create_org(http, "Acme")
        held = HeldChecks(monkeypatch)
        running = asyncio.create_task(http.post("/admin/login", json={
            "email": org.email, "password": org.password}))
        await until(lambda: app.state.services.hasher.in_flight == 1)
        refused = await http.put("/org/update", headers=org.auth, json={
            "old_organization_name": "Acme", "new_organization_name": "Acme Two",
            "password": "newsecure123"})
        assert refused.status_code == 503, refused.text
        held.release()
        assert (await running).status_code == 200
        assert (await master["organizations"].find_one({}))["organization_name"] == "Acme"
        assert (await http.get("/admin/me", headers=org.auth)).status_code == 200


@pytest.mark.parametrize(("cores", "cap"), [(4, 3), (1, 1)])
async def test_at_most_cores_minus_one_hashes_run_at_once(
        settings: Any, master: Any, monkeypatch: pytest.MonkeyPatch, cores: int, cap: int
) -> None:
    # The cap leaves the event loop a core of its own: with every core hashing, /health and
    # every other request would wait behind a burst of logins.
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    burst = cap + 3
    async with (app_with(settings, HASH_QUEUE_MAX=burst) as app, client_for(app) as http):
        hasher = app.state.services.hasher
        org = await create_org(http, "Acme")  # logs in once too (the dummy hash is made)
        checks = CountedChecks(monkeypatch)
        # From addresses of their own: the per email+address limit counts attempts in
        # progress too.
        clients = [client_for(app, f"192.0.2.{n + 1}") for n in range(burst)]
        logins = [asyncio.create_task(client.post("/admin/login", json={
            "email": org.email, "password": org.password})) for client in clients]
        # Every login has reached the hasher, and the cap's worth of checks are running.
        await until(lambda: hasher.in_flight == burst and checks.started >= cap)
        for done in range(1, burst + 1):  # one finishes, letting the next queued one in
            checks.let_one_through()
            await until(lambda done=done: checks.finished == done)  # type: ignore[misc]
        for response in await asyncio.gather(*logins):
            assert response.status_code == 200, response.text
        assert checks.started == burst
        assert checks.most_at_once == cap
        assert hasher.in_flight == 0
        for client in clients:
            await client.aclose()
