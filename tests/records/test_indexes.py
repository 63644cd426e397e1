"""POST/GET/DELETE /org/indexes: admin-declared secondary indexes on data fields."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from org_service.records.repository import TenantRecords
from tests.helpers import create_org
from tests.records.helpers import add, add_many


def index_body(name: str, *paths: str, kind: str = "employees") -> dict[str, Any]:
    return {"name": name, "kind": kind, "fields": [{"path": p} for p in paths or ("email",)]}


async def test_create_list_use_and_drop_an_index(client: httpx.AsyncClient, master) -> None:
    org = await create_org(client, "Acme")
    await add_many(client, org, "employees", [{"email": f"e{i}@x.io", "dept": "a"}
                                              for i in range(50)])
    created = await client.post("/org/indexes", headers=org.auth, json={
        "name": "by_dept_email", "kind": "employees",
        "fields": [{"path": "dept"}, {"path": "email", "order": -1}]})
    assert created.status_code == 201, created.text
    assert created.json() == {"name": "by_dept_email", "kind": "employees", "state": "ready",
                              "fields": [{"path": "dept", "order": 1},
                                         {"path": "email", "order": -1}]}
    stored = {ix["name"]: ix async for ix in await master[org.collection_name].list_indexes()}
    assert list(stored["rx_by_dept_email"]["key"].items()) == [
        ("kind", 1), ("data.dept", 1), ("data.email", -1)]
    assert {"kind_id", "kind_created"} <= set(stored)

    listed = (await client.get("/org/indexes", headers=org.auth)).json()
    assert listed == {"indexes": [created.json()], "limit": 10}
    query = await client.post("/org/records/employees/query", headers=org.auth,
                              json={"filter": {"dept": "a", "email": "e7@x.io"}})
    assert [r["data"]["email"] for r in query.json()["items"]] == ["e7@x.io"]

    assert (await client.delete("/org/indexes/by_dept_email", headers=org.auth)
            ).status_code == 204
    assert (await client.get("/org/indexes", headers=org.auth)).json()["indexes"] == []
    assert (await client.delete("/org/indexes/by_dept_email", headers=org.auth)
            ).status_code == 404


async def test_at_most_ten_indexes(client: httpx.AsyncClient) -> None:
    org = await create_org(client, "Acme")
    for i in range(10):
        response = await client.post("/org/indexes", headers=org.auth,
                                     json=index_body(f"ix{i}", f"field{i}"))
        assert response.status_code == 201, response.text
    eleventh = await client.post("/org/indexes", headers=org.auth,
                                 json=index_body("ix10", "field10"))
    assert eleventh.status_code == 409 and "at most 10" in eleventh.json()["detail"]
    assert len((await client.get("/org/indexes", headers=org.auth)).json()["indexes"]) == 10


async def test_duplicate_name_or_fields_is_409(client: httpx.AsyncClient) -> None:
    org = await create_org(client, "Acme")
    assert (await client.post("/org/indexes", headers=org.auth, json=index_body("a", "x"))
            ).status_code == 201
    same_name = await client.post("/org/indexes", headers=org.auth, json=index_body("a", "y"))
    assert same_name.status_code == 409
    same_fields = await client.post("/org/indexes", headers=org.auth, json=index_body("b", "x"))
    assert same_fields.status_code == 409
    # A field twice in one index: 409 as well (no schema can compare the items' paths).
    twice = await client.post("/org/indexes", headers=org.auth, json=index_body("c", "y", "y"))
    assert twice.status_code == 409, twice.text
    assert [ix["name"] for ix in (await client.get("/org/indexes", headers=org.auth)
                                  ).json()["indexes"]] == ["a"]


@pytest.mark.parametrize("body", [
    index_body("Bad-Name"), index_body("1st"), index_body("x" * 49), index_body("ok", kind="A"),
    index_body("ok", "$where"), index_body("ok", "a..b"), index_body("ok", "a.$x"),
    {"name": "ok", "kind": "employees", "fields": []},
    {**index_body("ok"), "unique": True},
    {"name": "ok", "kind": "employees", "fields": [{"path": "a", "order": 2}]},
    {"name": "ok", "kind": "employees", "fields": [{"path": f"f{i}"} for i in range(5)]},
])
async def test_bad_index_declarations_are_422(client: httpx.AsyncClient, body: Any,
                                              master) -> None:
    org = await create_org(client, "Acme")
    response = await client.post("/org/indexes", headers=org.auth, json=body)
    assert response.status_code == 422, response.text
    names = [ix["name"] async for ix in await master[org.collection_name].list_indexes()]
    assert not [n for n in names if n.startswith("rx_")]


async def test_default_indexes_cannot_be_dropped(client: httpx.AsyncClient, master) -> None:
    org = await create_org(client, "Acme")
    for name in ("kind_id", "_id_", "rx_kind_id"):
        response = await client.delete(f"/org/indexes/{name}", headers=org.auth)
        assert response.status_code in (404, 422)
    names = [ix["name"] async for ix in await master[org.collection_name].list_indexes()]
    assert {"_id_", "kind_id", "kind_created"} <= set(names)


async def test_indexes_are_per_organization(client: httpx.AsyncClient) -> None:
    org = await create_org(client, "Acme")
    other = await create_org(client, "Globex")
    await client.post("/org/indexes", headers=org.auth, json=index_body("mine"))
    assert (await client.get("/org/indexes", headers=other.auth)).json()["indexes"] == []
    assert (await client.delete("/org/indexes/mine", headers=other.auth)).status_code == 404
    assert len((await client.get("/org/indexes", headers=org.auth)).json()["indexes"]) == 1


async def test_slow_build_answers_202_and_other_requests_go_on(
        client: httpx.AsyncClient, services: Any, monkeypatch: Any) -> None:
    org = await create_org(client, "Acme")
    record = await add(client, org, "employees", {"email": "a@x.io"})
    monkeypatch.setattr(services.records, "index_wait", 0)
    release = asyncio.Event()
    real_create = TenantRecords.create_index

    async def slow_create(self: Any, *args: Any) -> None:  # a build that takes a while
        await release.wait()
        await real_create(self, *args)

    monkeypatch.setattr(TenantRecords, "create_index", slow_create)
    building = await client.post("/org/indexes", headers=org.auth, json=index_body("slow"))
    assert building.status_code == 202 and building.json()["state"] == "building"
    listed = (await client.get("/org/indexes", headers=org.auth)).json()["indexes"]
    assert [(ix["name"], ix["state"], ix["kind"]) for ix in listed] == [
        ("slow", "building", "employees")]
    # the API keeps answering while the build runs
    assert (await client.get(f"/org/records/employees/{record['id']}", headers=org.auth)
            ).status_code == 200
    release.set()
    for _ in range(100):
        listed = (await client.get("/org/indexes", headers=org.auth)).json()["indexes"]
        if listed and listed[0]["state"] == "ready":
            break
        await asyncio.sleep(0.05)
    assert [(ix["name"], ix["state"]) for ix in listed] == [("slow", "ready")]
