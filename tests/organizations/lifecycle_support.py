"""Shared pieces of the lifecycle tests: separate app instances (a "restart" is a fresh
app with its lifespan, which runs recovery), failpoints, and the invariants every lifecycle
test checks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import APIRouter
from pymongo import AsyncMongoClient

from org_service.main import create_app

APP_NAME = "org_service"  # the driver appname of every app instance (db.create_client)


@dataclass
class Running:
    app: Any
    http: httpx.AsyncClient

    @property
    def services(self) -> Any:
        return self.app.state.services


@asynccontextmanager
async def running(settings: Any, extra: APIRouter | None = None) -> AsyncIterator[Running]:
    """An app instance with its own client, lifespan (startup recovery) and HTTP client
    (plus the routes of `extra`, for probing what a tenant route may do)."""
    app = create_app(settings)
    if extra is not None:
        app.include_router(extra)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield Running(app, http)


# The fault a failing command meets by default: MaxTimeMSExpired, a transient fault (the
# service answers 503, retry) that the driver does not retry itself, so each failing
# command fails exactly once. (HostUnreachable, 6, is retried by the driver, and within a
# client-side timeout over and over until that runs out; 2, BadValue, is no fault of the
# database but a bad command, which the service answers with a 500.)
TRANSIENT_FAULT = 50


@asynccontextmanager
async def failing(raw_client: AsyncMongoClient[Any], *commands: str,
                  code: int | None = TRANSIENT_FAULT, times: int | None = None,
                  block_ms: int = 0) -> AsyncIterator[None]:
    """Make the app's `commands` fail on the server (failCommand), every time or `times`;
    with `block_ms` (and no code) they are only slowed down by that much."""
    data: dict[str, Any] = {"failCommands": list(commands), "appName": APP_NAME}
    if code is not None:
        data["errorCode"] = code
    if block_ms:
        data.update(blockConnection=True, blockTimeMS=block_ms)
    await raw_client.admin.command({
        "configureFailPoint": "failCommand",
        "mode": {"times": times} if times else "alwaysOn",
        "data": data,
    })
    try:
        yield
    finally:
        await raw_client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})


async def settled(db: Any, within: float = 15.0) -> None:
    """Wait until no lifecycle operation is in flight or settling (settling is deferred)."""
    deadline = asyncio.get_running_loop().time() + within
    while await db["lifecycle_ops"].count_documents({"phase": {"$ne": "done"}}):
        assert asyncio.get_running_loop().time() < deadline, await db["lifecycle_ops"].find(
            {}).to_list(None)
        await asyncio.sleep(0.05)


async def wipe(db: Any) -> None:
    """An empty master database again, once nothing is in flight any more."""
    await settled(db, within=30)
    for name in await db.list_collection_names():
        if name.startswith(("org_", "parked_")):
            await db.drop_collection(name)
        else:
            await db[name].delete_many({})


async def assert_consistent(db: Any, expected_counts: dict[str, int] | None = None,
                            within: float = 15.0) -> None:
    """The lifecycle invariants, once nothing is in flight:

    every organization is active and resolves to exactly one existing collection, no two
    share one, no tenant collection belongs to nobody, each slug is claimed by its
    organization and nothing else is claimed, each collection is owned by its organization
    (held by no operation) and nothing else is owned, admins belong to live organizations, and
    each organization's collection holds exactly the documents acknowledged to it."""
    await settled(db, within)
    orgs = await db["organizations"].find({}).to_list(None)
    assert [o["state"] for o in orgs] == ["active"] * len(orgs), orgs
    collections = {name for name in await db.list_collection_names() if name.startswith("org_")}
    assert sorted(o["collection_name"] for o in orgs) == sorted(collections)
    claims = await db["slug_claims"].find({}).to_list(None)
    assert {c["_id"]: c["organization_id"] for c in claims} == {o["slug"]: o["_id"]
                                                                  for o in orgs}
    owners = await db["tenant_collections"].find({}).to_list(None)
    assert {c["_id"]: (c["organization_id"], c["op_id"]) for c in owners} == {
        o["collection_name"]: (o["_id"], None) for o in orgs}, owners
    org_ids = {o["_id"] for o in orgs}
    admins = await db["members"].find({}).to_list(None)
    assert {a["organization_id"] for a in admins} == org_ids
    for org in orgs:
        docs = await db[org["collection_name"]].find({}).to_list(None)
        assert {d["tenant"] for d in docs} <= {str(org["_id"])}, "documents of another tenant"
        if expected_counts is not None:
            assert len(docs) == expected_counts[str(org["_id"])], org["organization_name"]
    if expected_counts is not None:
        assert set(expected_counts) == {str(o["_id"]) for o in orgs}


async def create(http: httpx.AsyncClient, name: str, email: str | None = None,
                 **headers: str) -> httpx.Response:
    email = email or f"admin@{name.lower().replace(' ', '-')}.example.com"
    return await http.post("/org/create", headers=headers, json={
        "organization_name": name, "email": email, "password": "secure123"})


async def token_for(http: httpx.AsyncClient, name: str) -> dict[str, str]:
    return await login_auth(http, f"admin@{name.lower().replace(' ', '-')}.example.com")


async def login_auth(http: httpx.AsyncClient, email: str) -> dict[str, str]:
    response = await http.post("/admin/login", json={"email": email, "password": "secure123"})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def rename(http: httpx.AsyncClient, auth: dict[str, str], old: str, new: str
                 ) -> httpx.Response:
    return await http.put("/org/update", headers=auth, json={
        "old_organization_name": old, "new_organization_name": new})


async def delete(http: httpx.AsyncClient, auth: dict[str, str], name: str) -> httpx.Response:
    return await http.request("DELETE", "/org/delete", headers=auth,
                              json={"organization_name": name})


async def fill(db: Any, organization_id: str, collection_name: str, count: int) -> None:
    """Tenant documents, written straight into the tenant collection."""
    if count:
        await db[collection_name].insert_many(
            [{"kind": "note", "tenant": organization_id, "n": i} for i in range(count)])


async def org_with_docs(running_app: Running, db: Any, name: str, count: int
                        ) -> tuple[str, dict[str, str]]:
    """Create `name` through the API, give it `count` documents; its id and auth header."""
    created = await create(running_app.http, name)
    assert created.status_code == 201, created.text
    org_id = created.json()["id"]
    await fill(db, org_id, created.json()["collection_name"], count)
    return org_id, await token_for(running_app.http, name)


def assert_retryable(response: httpx.Response) -> None:
    """A fault answer: 503 with Retry-After and the JSON error body, never a 500."""
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json()["error"] == "service_unavailable"
