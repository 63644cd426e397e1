"""What a record may hold: key rules, depth, size; bad input writes nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers import create_org
from tests.records.helpers import add, problem_locs


def nested(depth: int) -> dict[str, Any]:
    data: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        data = {"n": data}
    return data


@pytest.mark.parametrize(("data", "loc", "words"), [
    ({"$set": 1}, ["body", "$set"], "must not start with '$'"),
    ({"a": {"b.c": 1}}, ["body", "a", "b.c"], "must not contain '.'"),
    ({"a": [{"x\u0000y": 1}]}, ["body", "a", 0, "x\u0000y"], "NUL"),
    ({"a": {"": 1}}, ["body", "a", ""], "must not be empty"),
    ({"list": [1, {"$where": "1"}]}, ["body", "list", 1, "$where"], "'$'"),
])
async def test_bad_keys_are_422_naming_the_field(
        client: httpx.AsyncClient, master, data: dict[str, Any], loc: list[Any],
        words: str) -> None:
    org = await create_org(client, "Acme")
    response = await client.post("/org/records/employees", json=data, headers=org.auth)
    assert response.status_code == 422
    body = response.json()
    assert body["errors"][0]["loc"] == loc and words in body["errors"][0]["msg"]
    assert body["detail"].startswith("Invalid request: body.")
    assert await master[org.collection_name].count_documents({}) == 0


async def test_depth_20_is_fine_and_21_is_not(client: httpx.AsyncClient) -> None:
    org = await create_org(client, "Acme")
    await add(client, org, "deep", nested(20))
    response = await client.post("/org/records/deep", json=nested(21), headers=org.auth)
    assert response.status_code == 422
    assert "deeper than 20" in response.json()["errors"][0]["msg"]
    assert problem_locs(response)[0] == ["body", *["n"] * 20]
    too_deep_list: Any = [[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]
    response = await client.post("/org/records/deep", json={"l": too_deep_list},
                                 headers=org.auth)
    assert response.status_code == 422


async def test_record_over_max_record_bytes_is_413_naming_the_field(
        client: httpx.AsyncClient, master, settings) -> None:
    org = await create_org(client, "Acme")
    limit = settings.MAX_RECORD_BYTES
    response = await client.post("/org/records/docs", headers=org.auth,
                                 json={"title": "x", "body": "a" * limit})
    assert response.status_code == 413
    detail = response.json()["detail"]
    assert "'body'" in detail and "MAX_RECORD_BYTES" in detail
    assert await master[org.collection_name].count_documents({}) == 0
    await add(client, org, "docs", {"body": "a" * (limit - 100)})


async def test_update_over_the_size_limit_is_413_and_keeps_the_record(
        client: httpx.AsyncClient, settings) -> None:
    org = await create_org(client, "Acme")
    record = await add(client, org, "docs", {"body": "a" * (settings.MAX_RECORD_BYTES - 100)})
    url = f"/org/records/docs/{record['id']}"
    patched = await client.patch(url, json={"more": "b" * 200}, headers=org.auth)
    assert patched.status_code == 413 and "'body'" in patched.json()["detail"]
    put = await client.put(url, json={"x": "b" * settings.MAX_RECORD_BYTES}, headers=org.auth)
    assert put.status_code == 413
    assert (await client.get(url, headers=org.auth)).json() == record


async def test_bad_keys_in_put_and_patch_are_422(client: httpx.AsyncClient) -> None:
    org = await create_org(client, "Acme")
    record = await add(client, org, "docs", {"a": 1})
    url = f"/org/records/docs/{record['id']}"
    for method in ("PUT", "PATCH"):
        response = await client.request(method, url, json={"x": {"$inc": 1}}, headers=org.auth)
        assert response.status_code == 422
        assert problem_locs(response) == [["body", "x", "$inc"]]
    assert (await client.get(url, headers=org.auth)).json() == record


@pytest.mark.parametrize("body", [b"[1, 2]", b"\"text\"", b"null", b"{\"a\": NaN}",
                                  b"{\"a\": 1e999}", b"{broken"])
async def test_body_that_is_not_a_json_object_is_422(
        client: httpx.AsyncClient, body: bytes) -> None:
    org = await create_org(client, "Acme")
    response = await client.post("/org/records/docs", content=body,
                                 headers={**org.auth, "Content-Type": "application/json"})
    assert response.status_code == 422


async def test_body_over_the_app_limit_is_413(client: httpx.AsyncClient, settings) -> None:
    org = await create_org(client, "Acme")
    response = await client.post("/org/records/docs", headers=org.auth,
                                 json={"x": "a" * settings.MAX_BODY_BYTES})
    assert response.status_code == 413
