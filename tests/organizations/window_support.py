"""Shared pieces of the restore-window tests: an organization with something of everything,
its state read straight from the database, the operator CLI against a test database, and
the invariants of parked organizations."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bson import ObjectId
from typer.testing import Result

from tests.auth.test_throttle_cli import invoke
from tests.helpers import Org, create_org, login
from tests.members.support import Person, add
from tests.organizations.lifecycle_support import Running, settled

RECORDS = 12


@dataclass
class Built:
    org: Org
    member: Person


async def build(app: Running, name: str = "Acme") -> Built:
    """An organization with a member, records of two kinds, an index, a record policy and
    audit entries, all made through the API."""
    http = app.http
    org = await create_org(http, name)
    member = await add(http, org, "employee", f"Ed {name}")
    # Written straight into the collection, with the `tenant` the lifecycle invariants
    # check (lifecycle_support.assert_consistent).
    await app.services.mongo.master[org.collection_name].insert_many([
        {"kind": "notes" if n % 2 else "tasks", "tenant": org.id, "n": n,
         "text": f"record {n}"} for n in range(RECORDS)])
    index = await http.post("/org/indexes", headers=org.auth, json={
        "name": "by_n", "kind": "notes", "fields": [{"path": "n"}]})
    assert index.status_code in (201, 202), index.text
    policy = await http.put("/org/records/notes/policy", headers=org.auth,
                            json={"read": ["manager"], "write": ["manager"]})
    assert policy.status_code == 200, policy.text
    await settled(app.services.mongo.master)
    return Built(org, member)


async def state_of(db: Any, org_id: str, collection: str) -> dict[str, Any]:
    """What a restore must bring back: records, indexes, record policies, members (their
    password hashes too) and the audit trail."""
    oid = ObjectId(org_id)
    indexes = sorted([(ix["name"], tuple(ix["key"].items()))
                      async for ix in await db[collection].list_indexes()])
    org = (await db["organizations"].find_one({"_id": oid})
           or await db["deleted_organizations"].find_one({"_id": oid}))
    members = await db["members"].find({"organization_id": oid}).to_list(None) \
        or await db["deleted_members"].find({"organization_id": oid}).to_list(None)
    return {
        "records": await db[collection].find({}).sort("_id", 1).to_list(None),
        "indexes": indexes,
        "policies": org.get("record_policies") if org else None,
        "members": sorted((m["_id"], m["email"], m["password_hash"], m["role"])
                          for m in members),
        "audit": await db["audit_log"].find({"organization_id": oid}).sort(
            "_id", 1).to_list(None),
    }


def cli_env(settings: Any) -> dict[str, str]:
    """The operator CLI on the test's own database, with the test apps' lease and fence."""
    return {"MASTER_DB_NAME": settings.MASTER_DB_NAME,
            "TENANT_REQUEST_TIMEOUT_MS": str(settings.TENANT_REQUEST_TIMEOUT_MS),
            "LIFECYCLE_LEASE_SECONDS": str(settings.LIFECYCLE_LEASE_SECONDS),
            "COLUMNS": "250"}


async def cli(settings: Any, *args: str) -> Result:
    return await invoke(*args, **cli_env(settings))


async def listed(settings: Any) -> list[dict[str, Any]]:
    result = await cli(settings, "deleted", "--json")
    assert result.exit_code == 0, result.output
    found: list[dict[str, Any]] = json.loads(result.output)
    return found


async def due_now(db: Any, org_id: str) -> None:
    """Move the organization's window into the past (as if DELETION_GRACE_DAYS went by)."""
    doc = await db["deleted_organizations"].find_one({"_id": ObjectId(org_id)})
    await db["deleted_organizations"].update_one(
        {"_id": ObjectId(org_id)},
        {"$set": {"purge_after": doc["deleted_at"] - timedelta(seconds=1)}})


async def assert_parked(db: Any, parked: dict[str, int]) -> None:
    """Once nothing is in flight: exactly these organizations (id -> records) are parked,
    each whole (its collection, its document, its members) and in state parked, and none of
    them has anything left among the live ones."""
    await settled(db)
    docs = await db["deleted_organizations"].find({}).to_list(None)
    assert {str(d["_id"]): d["state"] for d in docs} == {i: "parked" for i in parked}
    collections = {n for n in await db.list_collection_names() if n.startswith("parked_")}
    assert collections == {f"parked_{i}" for i in parked}
    for org_id, count in parked.items():
        oid = ObjectId(org_id)
        assert await db[f"parked_{org_id}"].count_documents({"kind": {"$exists": True}}) \
            == count
        assert await db["deleted_members"].count_documents({"organization_id": oid}) >= 1
        assert await db["members"].count_documents({"organization_id": oid}) == 0
        assert await db["organizations"].count_documents({"_id": oid}) == 0
    member_orgs = {str(m["organization_id"]) for m in await db["deleted_members"].find(
        {}).to_list(None)}
    assert member_orgs <= set(parked)


async def relogin(app: Running, built: Built) -> None:
    """Members are back with their passwords."""
    await login(app.http, built.org.email, built.org.password)
    answer = await app.http.post("/auth/login", json={"email": built.member.email,
                                                      "password": "secure123"})
    assert answer.status_code == 200, answer.text
