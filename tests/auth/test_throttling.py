"""Login throttling lives in MongoDB: every API process sees the same counters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import bcrypt
import httpx
import pytest

from org_service.auth import throttle
from org_service.auth.repository import LoginFailureRepository
from org_service.db import utcnow
from org_service.main import create_app
from tests.helpers import app_with, calls_to, client_for, create_org, login

WINDOW = 15 * 60


async def attempt(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/admin/login", json={"email": email, "password": password})


def assert_throttled(response: httpx.Response, window: int = WINDOW) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["error"] == "too_many_requests"
    assert 1 <= int(response.headers["Retry-After"]) <= window




@pytest.fixture
async def second_process(settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Another API instance with its own MongoDB client, on the same database, whose
    windows last two seconds."""
    app = create_app(settings.model_copy(update={"LOGIN_WINDOW_SECONDS": 2}))
    async with app.router.lifespan_context(app), client_for(app) as client:
        yield client


async def test_sixth_attempt_after_five_failures_is_throttled(client: httpx.AsyncClient) -> None:
    org = await create_org(client, "Acme")
    for _ in range(5):
        assert (await attempt(client, org.email, "wrong-password")).status_code == 401
    assert_throttled(await attempt(client, org.email, "wrong-password"))
    # Even the right password waits: otherwise guessing could go on.
    assert_throttled(await attempt(client, org.email, org.password))
    # The email is matched case-insensitively.
    assert_throttled(await attempt(client, org.email.upper(), org.password))


async def test_success_resets_the_account_counter(client: httpx.AsyncClient) -> None:
    org = await create_org(client, "Acme")
    for _ in range(4):
        assert (await attempt(client, org.email, "wrong-password")).status_code == 401
    await login(client, org.email, org.password)
    for _ in range(4):
        assert (await attempt(client, org.email, "wrong-password")).status_code == 401
    await login(client, org.email, org.password)


async def test_twenty_failures_from_one_address_throttle_it(client: httpx.AsyncClient,
                                                            app: Any) -> None:
    org = await create_org(client, "Acme")
    for n in range(20):
        response = await attempt(client, f"guess{n}@example.com", "wrong-password")
        assert response.status_code == 401
    assert_throttled(await attempt(client, org.email, org.password))
    async with client_for(app, "198.51.100.9") as elsewhere:
        await login(elsewhere, org.email, org.password)


async def test_counters_are_shared_between_processes(
        client: httpx.AsyncClient, second_process: httpx.AsyncClient) -> None:
    org = await create_org(client, "Acme")
    for _ in range(3):
        assert (await attempt(client, org.email, "wrong-password")).status_code == 401
    for _ in range(2):
        assert (await attempt(second_process, org.email, "wrong-password")).status_code == 401
    assert_throttled(await attempt(client, org.email, org.password))
    assert_throttled(await attempt(second_process, org.email, org.password))


async def test_lockout_ends_when_the_window_passes(
        client: httpx.AsyncClient, second_process: httpx.AsyncClient) -> None:
    org = await create_org(client, "Acme")
    for _ in range(5):
        assert (await attempt(second_process, org.email, "wrong-password")).status_code == 401
    # An attacker hammering during the lockout does not extend it.
    for _ in range(3):
        assert_throttled(await attempt(second_process, org.email, "wrong-password"), window=2)
    await asyncio.sleep(2.1)
    await login(client, org.email, org.password)


async def test_throttled_attempts_do_not_reach_the_password_check(
        client: httpx.AsyncClient, master: Any) -> None:
    org = await create_org(client, "Acme")
    for _ in range(5):
        await attempt(client, org.email, "wrong-password")
    counters = await master["login_failures"].find(
        {"_id": {"$regex": "^(pair|address|email):"}}).to_list(None)
    # The email from this address, the address, the email from anywhere.
    assert sorted(doc["failures"] for doc in counters) == [5, 5, 5]
    assert all(org.email not in str(doc) for doc in counters)
    for _ in range(3):
        assert_throttled(await attempt(client, org.email, "wrong-password"))
    after = await master["login_failures"].find(
        {"_id": {"$regex": "^(pair|address|email):"}}).to_list(None)
    assert after == counters


async def test_concurrent_guesses_get_no_more_than_five_password_checks(
        client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    org = await create_org(client, "Acme")
    checked = calls_to(monkeypatch, bcrypt, "checkpw")
    responses = await asyncio.gather(*[
        attempt(client, org.email, f"guess-number-{n}") for n in range(12)])
    statuses = [response.status_code for response in responses]
    assert set(statuses) == {401, 429}
    # Five at most; racing past the email's slowdown threshold (10) may refuse a few more.
    assert 1 <= len(checked) <= 5 and statuses.count(401) == len(checked)


async def test_racing_failures_on_a_new_key_each_see_their_own_count(master: Any) -> None:
    # The first failures of a key arrive at once: every one is counted and sees a distinct
    # count (a single upsert, on SecantusDB, counted them all but answered some with none).
    failures = LoginFailureRepository(master)
    for trial in range(5):
        counters = await asyncio.gather(*[failures.add_failure(
            f"email:race-{trial}", utcnow(), timedelta(minutes=15)) for _ in range(12)])
        assert sorted(counter["failures"] for counter in counters) == list(range(1, 13))
        stored = await master["login_failures"].find_one({"_id": f"email:race-{trial}"})
        assert stored["failures"] == 12 and stored["expires_at"] > utcnow()


async def test_a_good_login_does_not_clear_the_address_counter(
        client: httpx.AsyncClient) -> None:
    org = await create_org(client, "Acme")
    for n in range(19):
        assert (await attempt(client, f"guess{n}@example.com", "wrong-pw")).status_code == 401
    await login(client, org.email, org.password)
    assert (await attempt(client, "guess@example.com", "wrong-pw")).status_code == 401
    assert_throttled(await attempt(client, org.email, org.password))


async def test_a_login_whose_failure_cannot_be_counted_is_503_not_409(
        client: httpx.AsyncClient, raw_client: Any, master: Any) -> None:
    # Every counter insert meets a duplicate key (as if other attempts kept creating it)
    # while no counter is there to increment: the attempt cannot be counted. (11001 is the
    # legacy duplicate-key code: the server refuses to fake 11000 without its details.)
    org = await create_org(client, "Acme")
    counters_before = await master["login_failures"].find().to_list()
    await raw_client.admin.command({
        "configureFailPoint": "failCommand", "mode": "alwaysOn",
        "data": {"failCommands": ["insert"], "errorCode": 11001}})
    try:
        response = await client.post("/admin/login", json={"email": org.email,
                                                           "password": "wrong-password"})
    finally:
        await raw_client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "1"
    assert await master["login_failures"].find().to_list() == counters_before




class FrozenClock:
    """The throttle's clock, moved only by the test: waits are asserted to the second."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FrozenClock:
    frozen = FrozenClock()
    monkeypatch.setattr(throttle, "utcnow", frozen)
    return frozen


async def test_failures_from_one_address_do_not_lock_the_owner_out_elsewhere(
        client: httpx.AsyncClient, app: Any) -> None:
    org = await create_org(client, "Acme")
    for _ in range(5):
        assert (await attempt(client, org.email, "wrong-password")).status_code == 401
    assert_throttled(await attempt(client, org.email, org.password))
    async with client_for(app, "198.51.100.9") as owner:
        await login(owner, org.email, org.password)
        # The owner's own failures are counted apart from the stranger's too.
        for _ in range(4):
            assert (await attempt(owner, org.email, "typo-password")).status_code == 401
        await login(owner, org.email, org.password)
    # The stranger's address stays throttled for that email.
    assert_throttled(await attempt(client, org.email, org.password))


async def test_the_email_ceiling_stops_an_attack_from_many_addresses(
        client: httpx.AsyncClient, settings: Any, master: Any) -> None:
    org = await create_org(client, "Acme")
    # No slowdown before the ceiling here: only the ceiling is under test.
    async with app_with(settings, LOGIN_EMAIL_CEILING=12,
                        LOGIN_EMAIL_SLOWDOWN_AFTER=12) as app:
        for n in range(12):
            async with client_for(app, f"192.0.2.{n + 1}") as stranger:
                assert (await attempt(stranger, org.email, "wrong-pw")).status_code == 401
        async with client_for(app, "192.0.2.200") as stranger:
            assert_throttled(await attempt(stranger, org.email, "wrong-pw"))
        # At the ceiling even the owner's right password waits for the window to pass.
        async with client_for(app, "198.51.100.9") as owner:
            assert_throttled(await attempt(owner, org.email, org.password))
    email_counters = [doc for doc in await master["login_failures"].find().to_list(None)
                      if doc["_id"].startswith("email:")]
    assert [doc["failures"] for doc in email_counters] == [12]


async def test_past_the_soft_threshold_each_failure_doubles_the_wait(
        client: httpx.AsyncClient, settings: Any, clock: FrozenClock) -> None:
    org = await create_org(client, "Acme")
    async with app_with(settings, LOGIN_EMAIL_SLOWDOWN_AFTER=3) as app:
        addresses = iter(f"192.0.2.{n}" for n in range(1, 100))

        async def from_elsewhere(password: str) -> httpx.Response:
            async with client_for(app, next(addresses)) as stranger:
                return await attempt(stranger, org.email, password)

        for _ in range(3):
            assert (await from_elsewhere("wrong-pw")).status_code == 401
        waits = []
        for _ in range(4):
            refused = await from_elsewhere("wrong-pw")
            assert_throttled(refused)
            waits.append(int(refused.headers["Retry-After"]))
            clock.advance(waits[-1] - 0.5)
            assert_throttled(await from_elsewhere("wrong-pw"))  # refused: not counted
            clock.advance(0.5)
            assert (await from_elsewhere("wrong-pw")).status_code == 401
        assert waits == [1, 2, 4, 8]
        # The owner waits out the last delay like everyone else, then gets in.
        assert_throttled(await from_elsewhere(org.password))
        clock.advance(16)
        async with client_for(app, "198.51.100.9") as owner:
            await login(owner, org.email, org.password)


async def test_the_slowdown_is_capped(client: httpx.AsyncClient, settings: Any,
                                      clock: FrozenClock) -> None:
    org = await create_org(client, "Acme")
    async with app_with(settings, LOGIN_EMAIL_SLOWDOWN_AFTER=1,
                        LOGIN_EMAIL_SLOWDOWN_MAX_SECONDS=5) as app:
        for n in range(6):
            async with client_for(app, f"192.0.2.{n + 1}") as stranger:
                assert (await attempt(stranger, org.email, "wrong-pw")).status_code == 401
            clock.advance(5)
        async with client_for(app, "192.0.2.50") as stranger:
            assert (await attempt(stranger, org.email, "wrong-pw")).status_code == 401
            refused = await attempt(stranger, org.email, "wrong-pw")
        assert_throttled(refused)
        assert refused.headers["Retry-After"] == "5"


async def test_racing_guesses_past_the_soft_threshold_get_one_password_check(
        client: httpx.AsyncClient, settings: Any, clock: FrozenClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    org = await create_org(client, "Acme")
    async with app_with(settings, LOGIN_EMAIL_SLOWDOWN_AFTER=2) as app:
        for n in range(2):
            async with client_for(app, f"192.0.2.{n + 1}") as stranger:
                assert (await attempt(stranger, org.email, "wrong-pw")).status_code == 401
        clock.advance(1)
        checked = calls_to(monkeypatch, bcrypt, "checkpw")
        clients = [client_for(app, f"198.51.100.{n + 1}") for n in range(8)]
        try:
            responses = await asyncio.gather(*[
                attempt(stranger, org.email, f"guess-{n}") for n, stranger in enumerate(clients)])
        finally:
            for stranger in clients:
                await stranger.aclose()
        assert sorted(response.status_code for response in responses) == [401] + [429] * 7
        assert len(checked) == 1
