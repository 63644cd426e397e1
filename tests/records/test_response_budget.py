"""A listing, a query page and an export hold at most MAX_RESPONSE_BYTES of records at a
time: a page stops early (and says where to go on), an export reads byte-bounded batches.
Measured as this process's peak RSS growth while the app serves the request (sampled every
few milliseconds; the app runs in this process): a record of many small fields takes about
ten times its BSON size once decoded, so 500 records of 256 KiB would take gigabytes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import psutil
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from tests.helpers import Org, create_org
from tests.organizations.lifecycle_support import Running, running

RECORDS = 500
# ~250 KiB of BSON a record, in fields of 240 characters. (Small fields decode to ~11 times
# their BSON size, but SecantusDB, a Python server, takes minutes to scan 500 such records.)
FIELDS, FIELD_CHARS = 1_000, 240
MiB = 1024 * 1024
# Each of these responses reads, decodes and renders at most MAX_RESPONSE_BYTES (8 MiB) of
# records at a time. Measured here: a page 22 MiB, a query page 42 MiB, the export 9 MiB;
# the export in batches of EXPORT_BATCH_SIZE (200) records alone, as before, 80 MiB.
PAGE_BOUND = 64 * MiB
EXPORT_BOUND = 40 * MiB


BUDGET_DB = "org_service_budget"


@pytest.fixture(scope="module")
async def wide_app(settings: Any, raw_client: AsyncMongoClient[Any]
                   ) -> AsyncIterator[tuple[Running, Org]]:
    """An app with an organization of RECORDS wide records. SecantusDB's find reads every
    match before it applies the limit, far longer than QUERY_MAX_TIME_MS here."""
    await raw_client.drop_database(BUDGET_DB)
    async with running(settings.model_copy(update={
            "MASTER_DB_NAME": BUDGET_DB, "QUERY_MAX_TIME_MS": 300_000})) as app:
        org = await create_org(app.http, "Wide Co")
        now = datetime.now(UTC)
        data = {f"k{i}": f"{i:0{FIELD_CHARS}d}" for i in range(FIELDS)}
        collection = raw_client[BUDGET_DB][org.collection_name]
        for _ in range(0, RECORDS, 50):
            await collection.insert_many([
                {"_id": ObjectId(), "kind": "wide", "data": data, "version": 1,
                 "created_at": now, "updated_at": now} for _ in range(50)])
        yield app, org
    await raw_client.drop_database(BUDGET_DB)


async def peak_of(call: Callable[[], Awaitable[Any]]) -> tuple[Any, int]:
    """What `call` returns, and by how much this process's RSS rose at most meanwhile."""
    process = psutil.Process()
    base = peak = process.memory_info().rss
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.005):
            peak = max(peak, process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = await call()
    finally:
        done.set()
        sampler.join()
    return result, max(peak, process.memory_info().rss) - base


async def export_lines(app: Running, org: Org) -> tuple[int, int]:
    """GET /org/export straight through the ASGI app, counting lines as they are sent and
    keeping none (httpx's ASGI transport would hold the whole body)."""
    headers = [(b"authorization", org.auth["Authorization"].encode())]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/org/export", "raw_path": b"",
             "query_string": b"", "root_path": "", "headers": headers,
             "client": ("203.0.113.7", 50000), "server": ("test", 80), "state": {}}
    status, lines = 0, 0
    requested, finished = False, asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await finished.wait()  # the client stays until the whole body is sent
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, lines
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            lines += message.get("body", b"").count(b"\n")
            if not message.get("more_body", False):
                finished.set()

    await app.app(scope, receive, send)
    return status, lines


async def test_a_page_stops_at_the_byte_budget_and_goes_on_from_there(
        wide_app: tuple[Running, Org], raw_client: AsyncMongoClient[Any]) -> None:
    app, org = wide_app
    client = app.http
    first, peak = await peak_of(lambda: client.get(
        "/org/records/wide", headers=org.auth, params={"limit": 500}))
    assert first.status_code == 200
    page = first.json()
    assert 1 <= len(page["items"]) < RECORDS and page["next"], len(page["items"])
    assert peak < PAGE_BOUND, f"{peak / MiB:.0f} MiB"

    # The next page starts right after the last record of this one.
    second = (await client.get("/org/records/wide", headers=org.auth,
                               params={"limit": 500, "after": page["next"]})).json()
    assert second["items"]
    listed = [r["id"] for r in page["items"] + second["items"]]
    in_order = await raw_client[BUDGET_DB][org.collection_name].find(
        {}, {"_id": 1}, sort=[("created_at", 1), ("_id", 1)], limit=len(listed)).to_list(None)
    assert listed == [str(d["_id"]) for d in in_order]


async def test_a_query_page_keeps_the_same_budget(wide_app: tuple[Running, Org]) -> None:
    app, org = wide_app
    response, peak = await peak_of(lambda: app.http.post(
        "/org/records/wide/query", headers=org.auth,
        json={"filter": {"k1": f"{1:0{FIELD_CHARS}d}"}, "limit": 500}))
    assert response.status_code == 200, response.text
    assert 1 <= len(response.json()["items"]) < RECORDS and response.json()["next"]
    assert peak < PAGE_BOUND, f"{peak / MiB:.0f} MiB"


async def test_an_export_of_every_wide_record_stays_within_the_budget(
        wide_app: tuple[Running, Org]) -> None:
    app, org = wide_app
    (status, lines), peak = await peak_of(lambda: export_lines(app, org))
    assert status == 200
    assert lines == RECORDS + 2  # the organization line, the records, the end line
    assert peak < EXPORT_BOUND, f"{peak / MiB:.0f} MiB"
