"""A record read by id rides in the tenant lookup's command, and only ever serves the
caller's own collection of the moment."""

from __future__ import annotations

from typing import Any

import httpx
from bson import ObjectId
from fastapi.security import HTTPAuthorizationCredentials
from starlette.requests import Request

from org_service.deps import resolve_tenant
from org_service.records.repository import by_id
from org_service.tenancy import CollectionHints, Prefetched
from tests.helpers import create_org
from tests.organizations.lifecycle_support import failing
from tests.records.helpers import add


async def test_a_read_by_id_needs_no_command_of_its_own(client: httpx.AsyncClient,
                                                        raw_client: Any) -> None:
    org = await create_org(client, "Acme")
    record = await add(client, org, "employees", {"name": "Ada"})
    # Every `find` fails (a transient fault, no primary change announced); the tenant
    # lookup is an aggregate and goes through.
    async with failing(raw_client, "find"):
        got = await client.get(f"/org/records/employees/{record['id']}", headers=org.auth)
        listed = await client.get("/org/records/employees", headers=org.auth)
    assert got.status_code == 200 and got.json() == record
    assert got.headers["ETag"] == '"1"'
    # The failpoint did bite: a listing reads with its own find.
    assert listed.status_code == 503


async def test_a_hint_naming_another_collection_serves_nothing_from_it(
        client: httpx.AsyncClient, services: Any, master: Any) -> None:
    acme = await create_org(client, "Acme")
    globex = await create_org(client, "Globex")
    theirs = await add(client, globex, "employees", {"name": "Gil"})
    ours = await add(client, acme, "employees", {"name": "Ada"})
    before = await master[globex.collection_name].find_one({})
    services.collection_hints.remember(acme.id, globex.collection_name)

    stolen = await client.get(f"/org/records/employees/{theirs['id']}", headers=acme.auth)
    assert stolen.status_code == 404 and "Gil" not in stolen.text
    assert await master[globex.collection_name].find_one({}) == before
    # The lookup corrected the hint: the caller's own records come from their collection.
    assert services.collection_hints.get(acme.id) == acme.collection_name
    got = await client.get(f"/org/records/employees/{ours['id']}", headers=acme.auth)
    assert got.status_code == 200 and got.json() == ours


async def test_after_a_rename_a_read_by_id_finds_the_record_in_the_new_collection(
        client: httpx.AsyncClient, services: Any) -> None:
    org = await create_org(client, "Acme")
    record = await add(client, org, "employees", {"name": "Ada"})
    assert services.collection_hints.get(org.id) == "org_acme"
    renamed = await client.put("/org/update", headers=org.auth, json={
        "old_organization_name": "Acme", "new_organization_name": "Acme Two"})
    assert renamed.status_code == 200, renamed.text
    got = await client.get(f"/org/records/employees/{record['id']}", headers=org.auth)
    assert got.status_code == 200 and got.json() == record
    assert services.collection_hints.get(org.id) == "org_acme_two"


def test_hints_forget_the_oldest_organization_beyond_their_capacity() -> None:
    hints = CollectionHints(capacity=2)
    hints.remember("a", "org_a")
    hints.remember("b", "org_b")
    hints.remember("a", "org_a")  # already known: no eviction
    hints.remember("c", "org_c")
    assert (hints.get("a"), hints.get("b"), hints.get("c")) == (None, "org_b", "org_c")


async def test_the_tenant_lookup_is_a_retryable_read(client: httpx.AsyncClient,
                                                     raw_client: Any) -> None:
    # Unreachable-host errors (code 6) are retryable reads: within the request's time budget
    # the driver retries the lookup's aggregate, so the caller never sees them. A
    # non-retryable error (code 2, BadValue: a 500, not a fault to retry) on the same
    # command shows the failpoint does bite.
    org = await create_org(client, "Acme")
    record = await add(client, org, "employees", {"name": "Ada"})
    path = f"/org/records/employees/{record['id']}"
    async with failing(raw_client, "aggregate", code=6, times=3):
        retried = await client.get(path, headers=org.auth)
    async with failing(raw_client, "aggregate", code=2, times=1):
        refused = await client.get(path, headers=org.auth)
    assert retried.status_code == 200 and retried.json() == record
    assert refused.status_code == 500 and refused.json()["error"] == "internal_error"


# The two guards of a prefetched record, each on its own: a record read through a stale
# hint must never be served as the caller's, and either guard alone would stop it, so each
# has a test that fails without it.

def test_a_prefetched_record_is_served_only_for_its_own_collection() -> None:
    query = by_id("employees", ObjectId())
    record = {"_id": query["_id"], "kind": "employees", "data": {"name": "Gil"}}
    prefetched = Prefetched("org_globex", query, record)
    assert prefetched.serve("org_acme", query) == (False, None)
    assert prefetched.serve("org_globex", query) == (True, record)
    assert prefetched.serve("org_globex", query) == (False, None)  # served once


def test_a_prefetched_record_is_served_only_for_its_own_query() -> None:
    query = by_id("employees", ObjectId())
    record = {"_id": query["_id"], "kind": "employees", "data": {"name": "Gil"}}
    prefetched = Prefetched("org_acme", query, record)
    assert prefetched.serve("org_acme", by_id("employees", ObjectId())) == (False, None)
    assert prefetched.serve("org_acme", by_id("robots", query["_id"])) == (False, None)
    assert prefetched.serve("org_acme", query) == (True, record)


async def tenant_resolved_with_hint(services: Any, org: Any, hint: str, query: Any) -> Any:
    """resolve_tenant for `org`'s token with `query` to prefetch, the hint set to `hint`."""
    services.collection_hints.remember(org.id, hint)
    request = Request({"type": "http", "method": "GET", "path": "/", "headers": [],
                       "client": ("203.0.113.7", 50000), "app": None})
    credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=org.token)
    try:
        return await resolve_tenant(request, services, credentials, None, query)
    finally:
        services.admission.leave(request.scope["state"])


async def test_a_hint_naming_another_collection_prefetches_nothing(
        client: httpx.AsyncClient, services: Any) -> None:
    acme = await create_org(client, "Acme")
    globex = await create_org(client, "Globex")
    theirs = await add(client, globex, "employees", {"name": "Gil"})
    query = by_id("employees", ObjectId(theirs["id"]))

    stale = await tenant_resolved_with_hint(services, acme, globex.collection_name, query)
    assert stale.collection_name == acme.collection_name
    assert stale.prefetched is None  # their record was read, and is not kept
    # With the hint right, the same read is kept for the caller's collection.
    right = await tenant_resolved_with_hint(services, acme, acme.collection_name, query)
    assert right.prefetched is not None
    assert right.prefetched.serve(acme.collection_name, query) == (True, None)
