"""What the operator-command tests share: the CLI run through its entry point (Typer's
runner on `cli.app`, against the test database), an organization with something of
everything, and a snapshot of what the database holds for it."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import httpx
from bson import ObjectId
from bson.raw_bson import RawBSONDocument
from typer.testing import CliRunner, Result

from org_service import cli
from org_service.records.repository import RAW
from tests.helpers import Org, create_org, login

MEMBER_PASSWORD = "member-pass-1"


async def invoke(*args: str, input: str | None = None, **env: str | None) -> Result:
    # In a thread: the command runs its own event loop, and the test's loop is running.
    return await asyncio.to_thread(CliRunner().invoke, cli.app, list(args), input=input,
                                   env={"COLUMNS": "250", **env})


async def invoke_json(*args: str) -> Any:
    result = await invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@dataclass
class Seeded:
    org: Org
    members: dict[str, str]  # email -> id
    old_tokens: list[dict[str, str]]


async def seed(client: httpx.AsyncClient, name: str = "Acme", records: int = 30) -> Seeded:
    """An organization with a manager and an employee reporting to her, records of three
    kinds (one with an index, one with a policy), and audit entries of all that."""
    org = await create_org(client, name)
    slug = name.lower().replace(" ", "-")
    members: dict[str, str] = {}
    manager = None
    for role in ("manager", "employee"):
        email = f"{role}@{slug}.example.com"
        body = {"email": email, "password": MEMBER_PASSWORD, "name": f"{role.title()} One",
                "role": role, "department": "Sales", "attributes": {"floor": 3}}
        if manager:
            body["manager_id"] = manager
        response = await client.post("/org/members", headers=org.auth, json=body)
        assert response.status_code == 201, response.text
        members[email] = manager = response.json()["id"]
    for kind, count in (("feedback", records), ("tasks", records // 3), ("payroll", 3)):
        response = await client.post(
            f"/org/records/{kind}/bulk", headers=org.auth,
            json=[{"n": n, "text": f"{kind} {n}", "nested": {"score": n * 1.5, "tags": ["a"]}}
                  for n in range(count)])
        assert response.status_code == 201, response.text
    response = await client.post("/org/indexes", headers=org.auth, json={
        "name": "by_score", "kind": "feedback", "fields": [{"path": "nested.score"}]})
    assert response.status_code in (201, 202), response.text
    response = await client.put("/org/records/payroll/policy", headers=org.auth,
                                json={"read": ["owner", "admin"], "write": ["owner"]})
    assert response.status_code == 200, response.text
    employee = await client.post("/auth/login", json={
        "email": f"employee@{slug}.example.com", "password": MEMBER_PASSWORD})
    assert employee.status_code == 200, employee.text
    old = [org.auth, {"Authorization": f"Bearer {employee.json()['access_token']}"}]
    return Seeded(org, members, old)


def raw_list(master: Any, collection: str, query: dict[str, Any]) -> Any:
    raw = master.get_collection(collection, codec_options=RAW)
    return raw.find(query, sort=[("_id", 1)]).to_list(None)


async def snapshot(master: Any, organization_id: str) -> dict[str, Any]:
    """What the database holds for the organization, records and audit as raw BSON."""
    oid = ObjectId(organization_id)
    org = await master["organizations"].find_one({"_id": oid})
    records: list[RawBSONDocument] = await raw_list(master, org["collection_name"], {})
    audit: list[RawBSONDocument] = await raw_list(master, "audit_log", {"organization_id": oid})
    indexes = [{k: v for k, v in ix.items() if k not in ("v", "ns")} for ix in
               await (await master[org["collection_name"]].list_indexes()).to_list(None)]
    return {
        "organization": org,
        "members": await master["members"].find({"organization_id": oid},
                                                sort=[("_id", 1)]).to_list(None),
        "records": [doc.raw for doc in records],
        "audit": {doc["_id"]: doc.raw for doc in audit},
        "indexes": sorted(indexes, key=lambda ix: ix["name"]),
    }


async def log_in_all(client: httpx.AsyncClient, seeded: Seeded) -> None:
    await login(client, seeded.org.email, seeded.org.password)
    for email in seeded.members:
        response = await client.post("/auth/login", json={"email": email,
                                                          "password": MEMBER_PASSWORD})
        assert response.status_code == 200, response.text


async def master_state(master: Any) -> dict[str, Any]:
    """Everything in the master database, to show that a refused command wrote nothing."""
    state: dict[str, Any] = {}
    for name in sorted(await master.list_collection_names()):
        state[name] = await master[name].find({}, sort=[("_id", 1)]).to_list(None)
    return state
