"""POST /org/records/{kind}/query: the safe filter subset, sort and paging."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from org_service.records.query import MAX_BRANCHES, MAX_FILTER_DEPTH, MAX_LIST
from tests.helpers import Org, create_org
from tests.records.helpers import add, add_many, problem_locs

PEOPLE = [
    {"name": "Ada", "age": 36, "dept": "eng", "tags": ["math", "lead"],
     "address": {"city": "London"}},
    {"name": "Alan", "age": 41, "dept": "eng", "tags": ["crypto"], "address": {"city": "Wilmslow"}},
    {"name": "Grace", "age": 85, "dept": "navy", "tags": ["cobol"]},
    {"name": "alice", "age": 20, "dept": "ops", "manager": None},
]


async def names(client: httpx.AsyncClient, org: Org, body: dict[str, Any]) -> list[str]:
    response = await client.post("/org/records/people/query", json=body, headers=org.auth)
    assert response.status_code == 200, response.text
    return [r["data"]["name"] for r in response.json()["items"]]


@pytest.fixture
async def org(client: httpx.AsyncClient) -> Org:
    acme = await create_org(client, "Acme")
    await add_many(client, acme, "people", PEOPLE)
    await add(client, acme, "robots", {"name": "Ada", "age": 36})
    return acme


@pytest.mark.parametrize(("flt", "expected"), [
    ({}, ["Ada", "Alan", "Grace", "alice"]),
    ({"dept": "eng"}, ["Ada", "Alan"]),
    ({"age": {"$eq": 85}}, ["Grace"]),
    ({"dept": {"$ne": "eng"}}, ["Grace", "alice"]),
    ({"age": {"$gt": 36, "$lte": 85}}, ["Alan", "Grace"]),
    ({"age": {"$gte": 36, "$lt": 85}}, ["Ada", "Alan"]),
    ({"dept": {"$in": ["navy", "ops"]}}, ["Grace", "alice"]),
    ({"dept": {"$nin": ["navy", "ops"]}}, ["Ada", "Alan"]),
    ({"address": {"$exists": False}}, ["Grace", "alice"]),
    ({"address.city": "London"}, ["Ada"]),
    ({"tags": "crypto"}, ["Alan"]),
    ({"tags.0": "math"}, ["Ada"]),
    ({"$or": [{"age": {"$lt": 30}}, {"dept": "navy"}]}, ["Grace", "alice"]),
    ({"$and": [{"dept": "eng"}, {"age": {"$gt": 40}}]}, ["Alan"]),
    ({"age": {"$not": {"$gt": 40}}}, ["Ada", "alice"]),
    ({"name": {"$regex": "^Al"}}, ["Alan"]),
    ({"name": {"$regex": "^al", "$options": "i"}}, ["Alan", "alice"]),
    ({"name": {"$not": {"$regex": "^A"}}}, ["Grace", "alice"]),
    ({"manager": None}, ["Ada", "Alan", "Grace", "alice"]),
])
async def test_allowed_operators(client: httpx.AsyncClient, org: Org, flt: Any,
                                 expected: list[str]) -> None:
    assert await names(client, org, {"filter": flt}) == expected


@pytest.mark.parametrize(("flt", "loc"), [
    ({"$where": "sleep(1000)"}, ["$where"]),
    ({"$expr": {"$gt": ["$data.age", 1]}}, ["$expr"]),
    ({"$function": {"body": "x", "args": [], "lang": "js"}}, ["$function"]),
    ({"$lookup": {"from": "admins"}}, ["$lookup"]),
    ({"$text": {"$search": "x"}}, ["$text"]),
    ({"$nor": [{"a": 1}]}, ["$nor"]),
    ({"$jsonSchema": {}}, ["$jsonSchema"]),
    ({"$comment": "x"}, ["$comment"]),
    ({"age": {"$where": "1"}}, ["age", "$where"]),
    ({"age": {"$expr": 1}}, ["age", "$expr"]),
    ({"age": {"$elemMatch": {"$gt": 1}}}, ["age", "$elemMatch"]),
    ({"age": {"$type": "string"}}, ["age", "$type"]),
    ({"age": {"$mod": [2, 0]}}, ["age", "$mod"]),
    ({"age": {"$size": 1}}, ["age", "$size"]),
    ({"age": {"$all": [1]}}, ["age", "$all"]),
    ({"loc": {"$near": [0, 0]}}, ["loc", "$near"]),
    ({"age": {"$function": {}}}, ["age", "$function"]),
    ({"age": {"$gt": 1, "plain": 2}}, ["age", "plain"]),
    ({"$gt": 3}, ["$gt"]),
    ({"$not": {"age": 1}}, ["$not"]),
    ({"$or": [{"age": {"$where": "1"}}]}, ["$or", 0, "age", "$where"]),
    ({"$and": []}, ["$and"]),
    ({"$or": "age"}, ["$or"]),
    ({"age": {"$eq": {"$where": "1"}}}, ["age", "$eq", "$where"]),
    ({"age": {"$in": [{"$gt": 1}]}}, ["age", "$in", 0, "$gt"]),
    ({"age": {"$in": 3}}, ["age", "$in"]),
    ({"age": {"$exists": "yes"}}, ["age", "$exists"]),
    ({"age": {"$not": 3}}, ["age", "$not"]),
    ({"a..b": 1}, ["a..b"]),
    ({"a.$id": 1}, ["a.$id"]),
    ({"kind": {"$ne": "x"}, "addr": {"city.$x": 1}}, ["addr", "city.$x"]),
    ({"name": {"$regex": "Al"}}, ["name", "$regex"]),
    ({"name": {"$regex": "^(a+)+$"}}, ["name", "$regex"]),
    ({"name": {"$regex": "^a.*"}}, ["name", "$regex"]),
    ({"name": {"$regex": "^a\\d"}}, ["name", "$regex"]),
    ({"name": {"$regex": "^" + "a" * 200}}, ["name", "$regex"]),
    ({"name": {"$regex": "^a", "$options": "x"}}, ["name", "$options"]),
    ({"name": {"$options": "i"}}, ["name", "$options"]),
    ({"name": {"$regex": {"$where": 1}}}, ["name", "$regex"]),
])
async def test_forbidden_filters_are_422_naming_the_part(
        client: httpx.AsyncClient, org: Org, flt: Any, loc: list[Any]) -> None:
    response = await client.post("/org/records/people/query", json={"filter": flt},
                                 headers=org.auth)
    assert response.status_code == 422, response.text
    assert problem_locs(response)[0] == ["body", "filter", *loc]
    assert ".".join(str(p) for p in ["body", "filter", *loc]) in response.json()["detail"]


async def test_escaped_regex_is_a_literal_prefix(client: httpx.AsyncClient) -> None:
    org = await create_org(client, "Acme")
    await add_many(client, org, "files", [{"name": "a.txt"}, {"name": "abtxt"},
                                          {"name": "a*b"}])
    assert await _files(client, org, {"name": {"$regex": "^a\\."}}) == ["a.txt"]
    assert await _files(client, org, {"name": {"$regex": "^a\\*"}}) == ["a*b"]


async def _files(client: httpx.AsyncClient, org: Org, flt: Any) -> list[str]:
    response = await client.post("/org/records/files/query", json={"filter": flt},
                                 headers=org.auth)
    return [r["data"]["name"] for r in response.json()["items"]]


async def test_filter_cannot_reach_outside_data_or_the_kind(
        client: httpx.AsyncClient, org: Org) -> None:
    # Field names are paths into data: "kind" and "_id" mean data.kind and data._id.
    assert await names(client, org, {"filter": {"kind": "robots"}}) == []
    assert await names(client, org, {"filter": {"$or": [{"kind": "robots"}, {"age": 36}]}}
                       ) == ["Ada"]


async def test_query_other_tenant_sees_nothing(client: httpx.AsyncClient, org: Org) -> None:
    other = await create_org(client, "Globex")
    assert await names(client, other, {"filter": {}}) == []


async def test_sort_and_pages(client: httpx.AsyncClient, org: Org) -> None:
    body: dict[str, Any] = {"filter": {"age": {"$gte": 0}}, "sort": {"created_at": -1},
                            "limit": 3}
    first = (await client.post("/org/records/people/query", json=body, headers=org.auth)).json()
    assert [r["data"]["name"] for r in first["items"]] == ["alice", "Grace", "Alan"]
    second = (await client.post("/org/records/people/query", headers=org.auth,
                                json={**body, "after": first["next"]})).json()
    assert [r["data"]["name"] for r in second["items"]] == ["Ada"]
    assert second["next"] is None
    by_id = (await client.post("/org/records/people/query", headers=org.auth,
                               json={"sort": {"id": 1}, "limit": 2})).json()
    assert [r["data"]["name"] for r in by_id["items"]] == ["Ada", "Alan"]
    # a cursor belongs to its sort order: under another it names no page
    wrong = await client.post("/org/records/people/query", headers=org.auth,
                              json={"sort": {"id": 1}, "after": first["next"]})
    assert wrong.status_code == 404


async def test_query_sorted_by_updated_at(client: httpx.AsyncClient, org: Org) -> None:
    ada = (await client.post("/org/records/people/query", headers=org.auth,
                             json={"filter": {"name": "Ada"}})).json()["items"][0]
    await client.patch(f"/org/records/people/{ada['id']}", json={"age": 37}, headers=org.auth)
    assert (await names(client, org, {"sort": {"updated_at": -1}, "limit": 1})) == ["Ada"]


@pytest.mark.parametrize("body", [
    {"sort": {"data.age": 1}}, {"sort": {"created_at": 1, "id": 1}},
    {"sort": {"created_at": 2}}, {"sort": {"created_at": True}},
    {"limit": 0}, {"limit": 501}, {"after": "no pe"}, {"filter": []}, {"extra": 1},
])
async def test_bad_query_body_is_422(client: httpx.AsyncClient, org: Org, body: Any) -> None:
    response = await client.post("/org/records/people/query", json=body, headers=org.auth)
    assert response.status_code == 422, response.text


async def test_query_runs_with_max_time_ms(client: httpx.AsyncClient, org: Org,
                                           raw_client) -> None:
    # A server that reports the time limit exceeded (MaxTimeMSExpired) becomes a 503 with
    # Retry-After and advice; that the limit is sent at all is checked in test_repository.
    await raw_client.admin.command({
        "configureFailPoint": "failCommand", "mode": "alwaysOn",  # not the lookup (aggregate)
        "data": {"failCommands": ["find"], "errorCode": 50}})
    try:
        response = await client.post("/org/records/people/query", json={}, headers=org.auth)
    finally:
        await raw_client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert "QUERY_MAX_TIME_MS" in response.json()["detail"]


def nested(innermost: dict[str, Any], depth: int) -> dict[str, Any]:
    """`innermost` as the filter `depth` levels deep: inside depth - 1 one-branch $and."""
    flt = innermost
    for _ in range(depth - 1):
        flt = {"$and": [flt]}
    return flt


def at_depth(depth: int) -> list[Any]:
    return ["$and", 0] * (depth - 1)


# Each size limit of a filter: a filter of size n that matches only Ada, the limit, the
# part named when n is over it, and what the message says. Depth counts filter and
# operator documents: {"name": "Ada"} is 1 deep, {"name": {"$eq": "Ada"}} 2.
SIZE_LIMITS = {
    "filter-depth": (lambda n: nested({"name": "Ada"}, n), MAX_FILTER_DEPTH,
                     lambda n: at_depth(n), f"deeper than {MAX_FILTER_DEPTH} levels"),
    "operator-depth": (lambda n: nested({"name": {"$eq": "Ada"}}, n - 1), MAX_FILTER_DEPTH,
                       lambda n: [*at_depth(n - 1), "name"],
                       f"deeper than {MAX_FILTER_DEPTH} levels"),
    "$and-branches": (lambda n: {"$and": [{"name": "Ada"}] * n}, MAX_BRANCHES,
                      lambda n: ["$and"], f"1 to {MAX_BRANCHES} filters"),
    "$or-branches": (lambda n: {"$or": [{"name": "Ada"}] + [{"age": -i} for i in range(1, n)]},
                     MAX_BRANCHES, lambda n: ["$or"], f"1 to {MAX_BRANCHES} filters"),
    "$in-values": (lambda n: {"name": {"$in": ["Ada"] + [f"x{i}" for i in range(1, n)]}},
                   MAX_LIST, lambda n: ["name", "$in"], f"at most {MAX_LIST} values"),
    "$nin-values": (lambda n: {"name": {"$nin": ["Alan", "Grace", "alice"]
                                        + [f"x{i}" for i in range(3, n)]}},
                    MAX_LIST, lambda n: ["name", "$nin"], f"at most {MAX_LIST} values"),
}


@pytest.mark.parametrize("limit", SIZE_LIMITS)
async def test_a_filter_just_over_a_size_limit_is_422_naming_it(
        client: httpx.AsyncClient, org: Org, limit: str) -> None:
    build, size, loc, says = SIZE_LIMITS[limit]
    response = await client.post("/org/records/people/query", json={"filter": build(size + 1)},
                                 headers=org.auth)
    assert response.status_code == 422, response.text[:500]
    [problem] = response.json()["errors"]
    assert problem["loc"] == ["body", "filter", *loc(size + 1)]
    assert says in problem["msg"]


@pytest.mark.parametrize("limit", SIZE_LIMITS)
async def test_a_filter_at_a_size_limit_is_accepted(client: httpx.AsyncClient, org: Org,
                                                    limit: str) -> None:
    build, size, _, _ = SIZE_LIMITS[limit]
    assert await names(client, org, {"filter": build(size)}) == ["Ada"]
