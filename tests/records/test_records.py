"""Create, read, replace, patch and delete single records; versions and If-Match."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.helpers import create_org
from tests.records.helpers import add


async def test_create_returns_the_stored_record(client: httpx.AsyncClient, master) -> None:
    org = await create_org(client, "Acme")
    created = await client.post("/org/records/employees", headers=org.auth,
                                json={"name": "Ada", "skills": ["math"], "level": 3})
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {"id", "kind", "data", "version", "created_at", "updated_at"}
    assert body["kind"] == "employees" and body["version"] == 1
    assert body["data"] == {"name": "Ada", "skills": ["math"], "level": 3}
    assert body["created_at"] == body["updated_at"]
    assert created.headers["ETag"] == '"1"'
    stored = await master[org.collection_name].find_one({"kind": "employees"})
    assert str(stored["_id"]) == body["id"] and stored["data"]["name"] == "Ada"

    got = await client.get(f"/org/records/employees/{body['id']}", headers=org.auth)
    assert got.status_code == 200 and got.json() == body


async def test_get_needs_the_right_kind_and_a_real_id(client: httpx.AsyncClient) -> None:
    org = await create_org(client, "Acme")
    record = await add(client, org, "employees", {"name": "Ada"})
    assert (await client.get(f"/org/records/tasks/{record['id']}", headers=org.auth)
            ).status_code == 404
    assert (await client.get("/org/records/employees/not-an-id", headers=org.auth)
            ).status_code == 404
    assert (await client.get("/org/records/employees/" + "0" * 24, headers=org.auth)
            ).status_code == 404


async def test_records_need_a_token(client: httpx.AsyncClient) -> None:
    assert (await client.post("/org/records/employees", json={"a": 1})).status_code == 401
    assert (await client.get("/org/records")).status_code == 401
    assert (await client.get("/org/export")).status_code == 401


@pytest.mark.parametrize("kind", ["Employees", "1st", "_x", "a" * 65, "sp ace", "ümlaut"])
async def test_bad_kind_is_422(client: httpx.AsyncClient, kind: str, master) -> None:
    org = await create_org(client, "Acme")
    response = await client.post(f"/org/records/{kind}", json={"a": 1}, headers=org.auth)
    assert response.status_code == 422
    assert "kind" in response.json()["detail"]
    assert await master[org.collection_name].count_documents({}) == 0


async def test_put_replaces_data_and_bumps_version(client: httpx.AsyncClient) -> None:
    org = await create_org(client, "Acme")
    record = await add(client, org, "tasks", {"title": "a", "done": False})
    url = f"/org/records/tasks/{record['id']}"
    replaced = await client.put(url, json={"title": "b"}, headers=org.auth)
    assert replaced.status_code == 200
    body = replaced.json()
    assert body["data"] == {"title": "b"} and body["version"] == 2
    assert body["created_at"] == record["created_at"]
    assert body["updated_at"] >= record["updated_at"]
    assert replaced.headers["ETag"] == '"2"'
    assert (await client.get(url, headers=org.auth)).json() == body


async def test_patch_is_a_json_merge_patch(client: httpx.AsyncClient) -> None:
    org = await create_org(client, "Acme")
    record = await add(client, org, "employees", {
        "name": "Ada", "phone": "123", "address": {"city": "London", "zip": "N1"},
        "tags": ["a", "b"], "title": "x"})
    patched = await client.patch(
        f"/org/records/employees/{record['id']}", headers={
            **org.auth, "Content-Type": "application/merge-patch+json"},
        content=b'{"phone": null, "address": {"zip": null, "street": "Main"},'
                b' "tags": ["c"], "title": {"en": "Lead", "none": null}, "new": 1}')
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["data"] == {"name": "Ada", "address": {"city": "London", "street": "Main"},
                            "tags": ["c"], "title": {"en": "Lead"}, "new": 1}
    assert body["version"] == 2


async def test_patch_must_be_an_object(client: httpx.AsyncClient) -> None:
    org = await create_org(client, "Acme")
    record = await add(client, org, "employees", {"name": "Ada"})
    response = await client.patch(f"/org/records/employees/{record['id']}",
                                  json=["x"], headers=org.auth)
    assert response.status_code == 422


async def test_delete_then_gone(client: httpx.AsyncClient, master) -> None:
    org = await create_org(client, "Acme")
    record = await add(client, org, "employees", {"name": "Ada"})
    url = f"/org/records/employees/{record['id']}"
    deleted = await client.delete(url, headers=org.auth)
    assert deleted.status_code == 204 and deleted.content == b""
    assert (await client.get(url, headers=org.auth)).status_code == 404
    assert (await client.delete(url, headers=org.auth)).status_code == 404
    assert await master[org.collection_name].count_documents({}) == 0


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_stale_if_match_is_412_and_changes_nothing(
        client: httpx.AsyncClient, method: str) -> None:
    org = await create_org(client, "Acme")
    record = await add(client, org, "employees", {"name": "Ada"})
    url = f"/org/records/employees/{record['id']}"
    assert (await client.put(url, json={"name": "Bea"}, headers=org.auth)).json()["version"] == 2
    stale = await client.request(method, url, json={"name": "Cy"},
                                 headers={**org.auth, "If-Match": '"1"'})
    assert stale.status_code == 412
    assert "version 2" in stale.json()["detail"]
    current = (await client.get(url, headers=org.auth)).json()
    assert current["data"] == {"name": "Bea"} and current["version"] == 2


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_current_if_match_is_accepted(client: httpx.AsyncClient, method: str) -> None:
    org = await create_org(client, "Acme")
    record = await add(client, org, "employees", {"name": "Ada"})
    url = f"/org/records/employees/{record['id']}"
    response = await client.request(method, url, json={"name": "Bea"},
                                    headers={**org.auth, "If-Match": "1"})
    assert response.status_code in (200, 204), response.text
    if method != "DELETE":
        assert response.json()["version"] == 2


async def test_bad_if_match_is_422(client: httpx.AsyncClient) -> None:
    org = await create_org(client, "Acme")
    record = await add(client, org, "employees", {"name": "Ada"})
    response = await client.put(f"/org/records/employees/{record['id']}", json={"a": 1},
                                headers={**org.auth, "If-Match": "yesterday"})
    assert response.status_code == 422 and "If-Match" in response.json()["detail"]


async def test_every_change_bumps_the_version(client: httpx.AsyncClient) -> None:
    org = await create_org(client, "Acme")
    record = await add(client, org, "employees", {"n": 0})
    url = f"/org/records/employees/{record['id']}"
    for n in range(1, 4):
        body = (await client.patch(url, json={"n": n}, headers=org.auth)).json()
        assert body["version"] == 1 + n
    body = (await client.put(url, json={"n": 9}, headers=org.auth)).json()
    assert body["version"] == 5


async def test_other_tenant_gets_404_and_the_record_is_untouched(
        client: httpx.AsyncClient, master) -> None:
    owner = await create_org(client, "Acme")
    intruder = await create_org(client, "Globex")
    record = await add(client, owner, "employees", {"salary": 100})
    url = f"/org/records/employees/{record['id']}"
    before = await master[owner.collection_name].find_one({})

    assert (await client.get(url, headers=intruder.auth)).status_code == 404
    assert (await client.put(url, json={"salary": 1}, headers=intruder.auth)).status_code == 404
    assert (await client.patch(url, json={"salary": 1}, headers=intruder.auth)
            ).status_code == 404
    assert (await client.delete(url, headers=intruder.auth)).status_code == 404
    forced = await client.get(url, headers={**intruder.auth, "X-Organization-ID": owner.id})
    assert forced.status_code == 403

    assert await master[owner.collection_name].find_one({}) == before
    assert await master[intruder.collection_name].count_documents({}) == 0
    listed = (await client.get("/org/records/employees", headers=intruder.auth)).json()
    assert listed == {"items": [], "next": None}
    assert (await client.get(url, headers=owner.auth)).json() == record


async def test_concurrent_puts_with_one_if_match_have_one_winner(
        client: httpx.AsyncClient) -> None:
    org = await create_org(client, "Acme")
    record = await add(client, org, "tasks", {"owner": None})
    url = f"/org/records/tasks/{record['id']}"
    responses = await asyncio.gather(*[
        client.put(url, json={"owner": n}, headers={**org.auth, "If-Match": "1"})
        for n in range(8)])
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [412] * 7
    winner = next(r.json() for r in responses if r.status_code == 200)
    current = (await client.get(url, headers=org.auth)).json()
    assert current == winner and current["version"] == 2


async def test_concurrent_patches_without_if_match_lose_no_update(
        client: httpx.AsyncClient) -> None:
    org = await create_org(client, "Acme")
    record = await add(client, org, "tasks", {})
    url = f"/org/records/tasks/{record['id']}"
    responses = await asyncio.gather(*[
        client.patch(url, json={f"field{n}": n}, headers=org.auth) for n in range(8)])
    applied = [n for n, r in enumerate(responses) if r.status_code == 200]
    assert all(r.status_code in (200, 409) for r in responses)
    assert applied
    current = (await client.get(url, headers=org.auth)).json()
    assert current["data"] == {f"field{n}": n for n in applied}
    assert current["version"] == 1 + len(applied)


async def test_documents_not_written_as_records_are_never_served_as_records(
        client: httpx.AsyncClient, master: Any) -> None:
    org = await create_org(client, "Acme")
    stray = await master[org.collection_name].insert_one({"kind": "notes", "text": "by hand"})
    got = await client.get(f"/org/records/notes/{stray.inserted_id}", headers=org.auth)
    assert got.status_code == 404
    kinds = await client.get("/org/records", headers=org.auth)
    assert kinds.status_code == 200 and "notes" not in kinds.text
    export = await client.get("/org/export", headers=org.auth)
    assert export.status_code == 200
    assert json.loads(export.text.strip().split("\n")[-1]) == {"type": "end", "records": 0}


@pytest.mark.parametrize("shape", [
    {"data": ["not", "an", "object"], "version": 1},
    {"data": {}, "version": True},
    {"data": {}, "version": "1"},
    {"data": {}},
], ids=["data-a-list", "version-a-bool", "version-a-string", "no-version"])
async def test_a_read_by_id_serves_no_malformed_document(
        client: httpx.AsyncClient, master: Any, shape: dict[str, Any]) -> None:
    org = await create_org(client, "Acme")
    now = datetime.now(UTC)
    stamps = {"kind": "notes", "created_at": now, "updated_at": now}
    collection = master[org.collection_name]
    bad = await collection.insert_one({**stamps, **shape})
    good = await collection.insert_one({**stamps, "data": {"n": 1}, "version": 1})
    # Twice each: the first read may go to the collection, later ones ride in the lookup.
    for _ in range(2):
        got = await client.get(f"/org/records/notes/{bad.inserted_id}", headers=org.auth)
        assert got.status_code == 404, got.text
        got = await client.get(f"/org/records/notes/{good.inserted_id}", headers=org.auth)
        assert got.status_code == 200 and got.json()["data"] == {"n": 1}
