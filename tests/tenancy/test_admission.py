"""One organization cannot take the whole process: past MAX_TENANT_REQUESTS_IN_FLIGHT of
its requests in flight, the next gets 429 while other organizations go on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from tests.helpers import create_org
from tests.organizations.lifecycle_support import Running, failing, running

ADMISSION_DB = "org_service_admission"


@pytest.fixture
async def app_of_two(settings: Any, raw_client: AsyncMongoClient[Any]
                     ) -> AsyncIterator[Running]:
    await raw_client.drop_database(ADMISSION_DB)
    async with running(settings.model_copy(update={
            "MASTER_DB_NAME": ADMISSION_DB, "MAX_TENANT_REQUESTS_IN_FLIGHT": 2})) as app:
        yield app


async def test_a_tenant_past_its_requests_in_flight_gets_429_others_go_on(
        app_of_two: Running, raw_client: AsyncMongoClient[Any]) -> None:
    http, admission = app_of_two.http, app_of_two.services.admission
    busy = await create_org(http, "Busy Co")
    calm = await create_org(http, "Calm Co")
    async with failing(raw_client, "find", code=None, block_ms=1500):
        # Two listings of Busy Co held on the server (their finds are blocked).
        held = [asyncio.create_task(http.get("/org/records/note", headers=busy.auth))
                for _ in range(2)]
        for _ in range(100):
            if admission.in_flight(busy.id) == 2:
                break
            await asyncio.sleep(0.01)
        assert admission.in_flight(busy.id) == 2

        refused = await http.get("/admin/me", headers=busy.auth)
        other = await http.get("/admin/me", headers=calm.auth)
        answers = await asyncio.gather(*held)

    assert refused.status_code == 429, refused.text
    assert refused.json()["error"] == "too_many_requests"
    assert int(refused.headers["Retry-After"]) >= 1
    assert other.status_code == 200, other.text
    assert [a.status_code for a in answers] == [200, 200]
    # Every request left when its response was over: the tenant is served again.
    assert admission.in_flight(busy.id) == 0
    assert (await http.get("/admin/me", headers=busy.auth)).status_code == 200


async def test_failed_and_refused_requests_leave_no_count_behind(
        app_of_two: Running) -> None:
    http, admission = app_of_two.http, app_of_two.services.admission
    org = await create_org(http, "Acme")
    for _ in range(5):  # errors after admission (404, 422) and plain successes
        assert (await http.get("/org/records/note/0123456789abcdef01234567",
                               headers=org.auth)).status_code == 404
        assert (await http.post("/org/records/note", headers=org.auth,
                                json=[1])).status_code == 422
        assert (await http.get("/org/export", headers=org.auth)).status_code == 200
    assert admission.in_flight(org.id) == 0
