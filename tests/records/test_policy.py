"""Per-kind record policies: who reads and who writes each kind, on top of the role table;
and the organization's stats."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.members.support import team


async def test_by_default_every_role_reads_and_employees_do_not_write(
        client: httpx.AsyncClient, master: Any) -> None:
    people = await team(client)
    created = await client.post("/org/records/notes", headers=people["manager"].auth,
                                json={"text": "hello"})
    assert created.status_code == 201

    read = await client.get(f"/org/records/notes/{created.json()['id']}",
                            headers=people["employee"].auth)
    write = await client.post("/org/records/notes", headers=people["employee"].auth,
                              json={"text": "mine"})
    policy = await client.get("/org/records/notes/policy", headers=people["admin"].auth)

    assert read.status_code == 200
    assert (write.status_code, write.json()["error"]) == (403, "permission_denied")
    assert policy.json() == {"kind": "notes", "read": ["owner", "admin", "manager", "employee"],
                             "write": ["owner", "admin", "manager"], "default": True}
    assert await master[people["org"].collection_name].count_documents({"kind": "notes"}) == 1


async def test_a_member_outside_the_read_policy_meets_the_kind_nowhere(
        client: httpx.AsyncClient, master: Any) -> None:
    people = await team(client)
    owner, manager, employee = people["owner"], people["manager"], people["employee"]
    salary = await client.post("/org/records/salaries", headers=owner.auth, json={"eur": 1})
    await client.post("/org/records/notes", headers=owner.auth, json={"text": "public"})
    salary_id = salary.json()["id"]

    policy = await client.put("/org/records/salaries/policy", headers=people["admin"].auth,
                              json={"read": ["manager"], "write": []})
    assert policy.status_code == 200, policy.text
    assert policy.json() == {"kind": "salaries", "read": ["owner", "admin", "manager"],
                             "write": ["owner", "admin"], "default": False}

    for response in (
            await client.get(f"/org/records/salaries/{salary_id}", headers=employee.auth),
            await client.get(f"/org/records/salaries/{salary_id}", headers=employee.auth),
            await client.get("/org/records/salaries", headers=employee.auth),
            await client.post("/org/records/salaries/query", headers=employee.auth, json={}),
            await client.post("/org/records/salaries", headers=employee.auth, json={"eur": 2}),
            await client.patch(f"/org/records/salaries/{salary_id}", headers=employee.auth,
                               json={"eur": 9})):
        assert response.status_code == 404, response.text
    kinds = await client.get("/org/records", headers=employee.auth)
    assert [k["kind"] for k in kinds.json()["kinds"]] == ["notes"]
    exported = await client.get("/org/export", headers=employee.auth)
    lines = [json.loads(line) for line in exported.text.splitlines()]
    assert {line["record"]["kind"] for line in lines if line["type"] == "record"} == {"notes"}
    assert lines[-1] == {"type": "end", "records": 1}

    # The manager reads but may not write; the owner does both.
    assert (await client.get(f"/org/records/salaries/{salary_id}",
                             headers=manager.auth)).status_code == 200
    refused = await client.patch(f"/org/records/salaries/{salary_id}", headers=manager.auth,
                                 json={"eur": 9})
    assert (refused.status_code, refused.json()["error"]) == (403, "permission_denied")
    stored = await master[people["org"].collection_name].find_one({"kind": "salaries"})
    assert stored["data"] == {"eur": 1}
    assert (await client.patch(f"/org/records/salaries/{salary_id}", headers=owner.auth,
                               json={"eur": 3})).status_code == 200
    owner_kinds = await client.get("/org/records", headers=owner.auth)
    assert [k["kind"] for k in owner_kinds.json()["kinds"]] == ["notes", "salaries"]


async def test_a_role_that_writes_must_read_and_only_owners_and_admins_set_policies(
        client: httpx.AsyncClient, master: Any) -> None:
    people = await team(client)

    unread = await client.put("/org/records/tasks/policy", headers=people["owner"].auth,
                              json={"read": ["manager"], "write": ["employee"]})
    by_manager = await client.put("/org/records/tasks/policy", headers=people["manager"].auth,
                                  json={"read": ["manager"], "write": []})
    bad_role = await client.put("/org/records/tasks/policy", headers=people["owner"].auth,
                                json={"read": ["superuser"], "write": []})

    assert unread.status_code == 422
    assert unread.json()["errors"][0]["loc"] == ["body", "write"]
    assert "employee" in unread.json()["errors"][0]["msg"]
    assert by_manager.status_code == 403
    assert bad_role.status_code == 422
    org = await master["organizations"].find_one({})
    assert "record_policies" not in org


async def test_a_policy_takes_effect_on_the_next_request_and_is_audited(
        client: httpx.AsyncClient) -> None:
    people = await team(client)
    employee = people["employee"]
    assert (await client.post("/org/records/tasks", headers=employee.auth,
                              json={"t": 1})).status_code == 403

    opened = await client.put("/org/records/tasks/policy", headers=people["owner"].auth,
                              json={"read": ["employee", "manager"],
                                    "write": ["employee", "manager"]})

    assert opened.status_code == 200
    assert (await client.post("/org/records/tasks", headers=employee.auth,
                              json={"t": 1})).status_code == 201
    entries = (await client.get("/org/audit", headers=people["owner"].auth)).json()["entries"]
    change = next(e for e in entries if e["action"] == "records.policy_change")
    assert change["admin_id"] == people["owner"].id
    assert change["target"] == "tasks read=employee,manager write=employee,manager"


async def test_stats_count_members_records_and_the_collection(
        client: httpx.AsyncClient) -> None:
    people = await team(client)
    owner = people["owner"]
    await client.post("/org/records/notes/bulk", headers=owner.auth, json=[{"n": i}
                                                                        for i in range(3)])
    await client.post("/org/records/tasks", headers=owner.auth, json={"t": 1})
    await client.post(f"/org/members/{people['employee'].id}/suspend", headers=owner.auth)

    stats = await client.get("/org/stats", headers=people["manager"].auth)
    refused = await client.get("/org/stats", headers=people["employee"].auth)

    assert stats.status_code == 200, stats.text
    body = stats.json()
    assert body["members"] == [
        {"role": "owner", "state": "active", "count": 1},
        {"role": "admin", "state": "active", "count": 1},
        {"role": "manager", "state": "active", "count": 1},
        {"role": "employee", "state": "suspended", "count": 1}]
    assert body["records"] == [{"kind": "notes", "count": 3}, {"kind": "tasks", "count": 1}]
    assert body["collection"]["name"] == people["org"].collection_name
    assert body["collection"]["documents"] == 4
    assert body["collection"]["bytes"] > 0
    assert refused.status_code == 403
