"""POST /org/records/{kind}/bulk: up to 1,000 records, all or nothing."""

from __future__ import annotations

import httpx

from org_service.records.schemas import BULK_MAX_BODY_BYTES
from tests.helpers import create_org
from tests.records.helpers import add_many, problem_locs


async def test_bulk_stores_every_item(client: httpx.AsyncClient, master) -> None:
    org = await create_org(client, "Acme")
    ids = await add_many(client, org, "feedback", [{"score": i} for i in range(1000)])
    assert len(set(ids)) == 1000
    assert await master[org.collection_name].count_documents({"kind": "feedback"}) == 1000
    one = await client.get(f"/org/records/feedback/{ids[7]}", headers=org.auth)
    assert one.json()["data"] == {"score": 7} and one.json()["version"] == 1


async def test_bulk_over_1000_items_is_422(client: httpx.AsyncClient, master) -> None:
    org = await create_org(client, "Acme")
    response = await client.post("/org/records/feedback/bulk", headers=org.auth,
                                 json=[{"i": i} for i in range(1001)])
    assert response.status_code == 422 and "1000" in response.text
    assert await master[org.collection_name].count_documents({}) == 0


async def test_bulk_may_be_larger_than_the_app_body_limit(
        client: httpx.AsyncClient, settings) -> None:
    org = await create_org(client, "Acme")
    chunk = "x" * 4000
    items = [{"text": chunk} for _ in range(400)]  # ~1.6 MB, over MAX_BODY_BYTES
    assert len(chunk) * len(items) > settings.MAX_BODY_BYTES
    assert len(await add_many(client, org, "docs", items)) == 400


async def test_bulk_reports_every_bad_item_and_writes_nothing(
        client: httpx.AsyncClient, master) -> None:
    org = await create_org(client, "Acme")
    items = [{"ok": 1}, {"$bad": 1}, {"ok": 2}, {"a": {"x.y": 1}}]
    response = await client.post("/org/records/feedback/bulk", json=items, headers=org.auth)
    assert response.status_code == 422
    assert problem_locs(response) == [["body", 1, "$bad"], ["body", 3, "a", "x.y"]]
    assert await master[org.collection_name].count_documents({}) == 0


async def test_bulk_with_an_oversized_item_is_413_naming_it(
        client: httpx.AsyncClient, master, settings) -> None:
    org = await create_org(client, "Acme")
    items = [{"ok": 1}, {"big": "a" * settings.MAX_RECORD_BYTES}]
    response = await client.post("/org/records/docs/bulk", json=items, headers=org.auth)
    assert response.status_code == 413
    assert "item 1" in response.json()["detail"]
    assert await master[org.collection_name].count_documents({}) == 0


async def test_bulk_that_fails_in_the_database_writes_nothing(
        client: httpx.AsyncClient, master, raw_client) -> None:
    org = await create_org(client, "Acme")
    await raw_client.admin.command({
        "configureFailPoint": "failCommand", "mode": {"times": 1},
        # MaxTimeMSExpired: a transient fault (503) the driver does not retry by itself.
        "data": {"failCommands": ["insert"], "errorCode": 50}})
    try:
        response = await client.post("/org/records/feedback/bulk", headers=org.auth,
                                     json=[{"i": i} for i in range(10)])
    finally:
        await raw_client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert await master[org.collection_name].count_documents({}) == 0


async def test_bulk_body_over_16_mib_is_413(client: httpx.AsyncClient, master) -> None:
    org = await create_org(client, "Acme")
    body = b"[" + b",".join([b'{"t": "' + b"x" * 20_000 + b'"}'] * 900) + b"]"
    assert len(body) > BULK_MAX_BODY_BYTES
    response = await client.post("/org/records/docs/bulk", content=body,
                                 headers={**org.auth, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert await master[org.collection_name].count_documents({}) == 0
