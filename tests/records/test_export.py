"""GET /org/export streams NDJSON with flat memory; records follow renames and deletes."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from typing import Any

import httpx

from tests.helpers import create_org
from tests.records.helpers import add, add_many

RECORDS = 3000
PAYLOAD = "x" * 1000


async def stream_export(app: Any, token: str) -> tuple[int, int, list[bytes], int]:
    """Drive the ASGI app directly and drop each chunk once counted (httpx's test transport
    would buffer the whole body): returns (status, total bytes, first lines, chunks)."""
    total = chunks = 0
    status = 0
    head: list[bytes] = []
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/org/export", "raw_path": b"/org/export",
             "query_string": b"", "root_path": "", "client": ("203.0.113.7", 5000),
             "server": ("test", 80),
             "headers": [(b"host", b"test"), (b"authorization", f"Bearer {token}".encode())]}

    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if requested:  # afterwards the server only listens for a disconnect: never comes
            await asyncio.Event().wait()
        requested = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal total, chunks, status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body = message.get("body", b"")
            total += len(body)
            chunks += 1 if body else 0
            if len(head) < 3:
                head.extend(body.splitlines()[: 3 - len(head)])

    await app(scope, receive, send)
    return status, total, head, chunks


async def measured_export(app: Any, token: str) -> tuple[int, int, list[bytes], int]:
    tracemalloc.start()
    try:
        status, total, head, chunks = await stream_export(app, token)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 200
    return peak, total, head, chunks


async def test_export_streams_every_record_with_flat_memory(
        client: httpx.AsyncClient, app: Any, services: Any, monkeypatch: Any) -> None:
    # The batch the driver holds is the memory an export needs: a small one makes the
    # difference from the whole export plain at test sizes.
    monkeypatch.setattr(services.records.repository, "export_batch_size", 100)
    org = await create_org(client, "Acme")
    other = await create_org(client, "Globex")
    await add(client, other, "secrets", {"x": "not yours"})

    async def grow(start: int) -> None:
        for first in range(start, start + RECORDS, 1000):
            await add_many(client, org, "feedback",
                           [{"i": i, "text": PAYLOAD} for i in range(first, first + 1000)])

    await grow(0)
    peak, total, head, chunks = await measured_export(app, org.token)
    assert total > RECORDS * len(PAYLOAD)
    assert chunks > 10  # sent as it is read, never as one body
    assert peak < total / 3, (peak, total)
    meta = json.loads(head[0])
    assert meta["type"] == "organization"
    assert meta["organization"]["organization_name"] == "Acme"
    assert meta["organization"]["collection_name"] == "org_acme"
    first = json.loads(head[1])
    assert first["type"] == "record" and first["record"]["data"]["i"] == 0

    # Twice the records: twice the bytes, the same memory.
    await grow(RECORDS)
    peak2, total2, _, _ = await measured_export(app, org.token)
    assert total2 > 1.9 * total
    assert peak2 < 1.25 * peak, (peak, peak2)


async def test_export_content(client: httpx.AsyncClient) -> None:
    org = await create_org(client, "Acme")
    other = await create_org(client, "Globex")
    await add(client, other, "secrets", {"x": "not yours"})
    await add_many(client, org, "tasks", [{"i": i} for i in range(5)])
    record = await add(client, org, "employees", {"name": "Ada"})
    response = await client.get("/org/export", headers=org.auth)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert "org_acme.ndjson" in response.headers["content-disposition"]
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert lines[0]["organization"]["id"] == org.id
    assert lines[-1] == {"type": "end", "records": 6}
    records = [line["record"] for line in lines[1:-1]]
    assert [r["kind"] for r in records] == ["employees"] + ["tasks"] * 5
    assert records[0] == record
    assert "not yours" not in response.text


async def test_empty_export_and_database_down_before_the_stream(
        client: httpx.AsyncClient, raw_client: Any) -> None:
    org = await create_org(client, "Acme")
    empty = await client.get("/org/export", headers=org.auth)
    assert [json.loads(line)["type"] for line in empty.text.splitlines()] == [
        "organization", "end"]
    await raw_client.admin.command({
        "configureFailPoint": "failCommand", "mode": "alwaysOn",  # not the lookup (aggregate)
        "data": {"failCommands": ["find"], "errorCode": 6}})
    try:
        down = await client.get("/org/export", headers=org.auth)
    finally:
        await raw_client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
    assert down.status_code == 503 and down.headers["Retry-After"]
    assert down.json()["error"] == "service_unavailable"


async def test_rename_carries_records_along(client: httpx.AsyncClient, master) -> None:
    org = await create_org(client, "Acme")
    record = await add(client, org, "employees", {"name": "Ada"})
    renamed = await client.put("/org/update", headers=org.auth, json={
        "old_organization_name": "Acme", "new_organization_name": "Acme Two"})
    assert renamed.status_code == 200, renamed.text
    assert "org_acme" not in await master.list_collection_names()
    got = await client.get(f"/org/records/employees/{record['id']}", headers=org.auth)
    assert got.status_code == 200 and got.json() == record
    await add(client, org, "employees", {"name": "Bea"})
    assert await master["org_acme_two"].count_documents({"kind": "employees"}) == 2


async def test_delete_removes_the_records(client: httpx.AsyncClient, master) -> None:
    org = await create_org(client, "Acme")
    await add_many(client, org, "employees", [{"n": i} for i in range(10)])
    deleted = await client.request("DELETE", "/org/delete", headers=org.auth,
                                   json={"organization_name": "Acme"})
    assert deleted.status_code == 200
    assert "org_acme" not in await master.list_collection_names()
    assert (await client.get("/org/records", headers=org.auth)).status_code == 401
    # a new organization with the same name starts empty
    again = await create_org(client, "Acme", email="new@acme.example.com")
    assert (await client.get("/org/records", headers=again.auth)).json() == {"kinds": []}
