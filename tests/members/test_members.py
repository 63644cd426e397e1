"""Members through the API: adding people with roles, who may grant what, the last owner,
suspension, the manager hierarchy, ownership, the caller's own account."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from bson import ObjectId

from tests.helpers import DEFAULT_PASSWORD, create_org
from tests.members.support import add, member_login, team
from tests.verification.support import CHANGE, follow_link


async def test_the_creator_is_the_owner_and_every_role_logs_in_at_auth_login(
        client: httpx.AsyncClient, master: Any) -> None:
    people = await team(client)

    for role in ("owner", "admin", "manager", "employee"):
        person = people[role]
        response = await member_login(client, person.email)
        assert response.status_code == 200, response.text
        assert response.json()["role"] == role
        me = await client.get("/me", headers={
            "Authorization": f"Bearer {response.json()['access_token']}"})
        assert me.json()["role"] == role and me.json()["email"] == person.email
    stored = await master["members"].find_one({"email_key": people["org"].email})
    assert stored["role"] == "owner" and stored["state"] == "active"


async def test_admin_login_keeps_its_contract_for_owners_and_admins_and_names_auth_login(
        client: httpx.AsyncClient) -> None:
    people = await team(client)

    for role in ("owner", "admin"):
        response = await client.post("/admin/login", json={
            "email": people[role].email, "password": DEFAULT_PASSWORD})
        assert response.status_code == 200
        # The seed's fields, and the refresh token of the session the login started.
        assert set(response.json()) == {"access_token", "token_type", "admin_id",
                                        "organization_name", "email", "expires_in",
                                        "refresh_token"}
    for role in ("manager", "employee"):
        response = await client.post("/admin/login", json={
            "email": people[role].email, "password": DEFAULT_PASSWORD})
        assert response.status_code == 403
        assert response.json()["error"] == "use_auth_login"
        assert "/auth/login" in response.json()["detail"]
    # A wrong password says nothing about the role.
    wrong = await client.post("/admin/login", json={"email": people["employee"].email,
                                                     "password": "wrong-password"})
    assert wrong.status_code == 401


async def test_nobody_grants_a_role_above_their_own_and_nothing_is_written(
        client: httpx.AsyncClient, master: Any) -> None:
    people = await team(client)
    before = await master["members"].count_documents({})

    as_admin = await client.post("/org/members", headers=people["admin"].auth, json={
        "email": "new@x.example.com", "password": DEFAULT_PASSWORD, "name": "New",
        "role": "owner"})
    promoted = await client.patch(f"/org/members/{people['employee'].id}",
                                  headers=people["admin"].auth, json={"role": "owner"})
    as_manager = await client.post("/org/members", headers=people["manager"].auth, json={
        "email": "new@x.example.com", "password": DEFAULT_PASSWORD, "name": "New"})

    assert (as_admin.status_code, as_admin.json()["error"]) == (403, "permission_denied")
    assert promoted.status_code == 403
    assert (as_manager.status_code, as_manager.json()["error"]) == (403, "permission_denied")
    assert await master["members"].count_documents({}) == before
    employee = await master["members"].find_one({"_id": ObjectId(people["employee"].id)})
    assert employee["role"] == "employee"
    admin_made_admin = await client.post("/org/members", headers=people["admin"].auth, json={
        "email": "peer@x.example.com", "password": DEFAULT_PASSWORD, "name": "Peer",
        "role": "admin"})
    assert admin_made_admin.status_code == 201


async def test_only_an_owner_changes_an_owner(client: httpx.AsyncClient, master: Any) -> None:
    people = await team(client)
    owner_id = people["owner"].id

    for request in (client.patch(f"/org/members/{owner_id}", headers=people["admin"].auth,
                                 json={"title": "Figurehead"}),
                    client.post(f"/org/members/{owner_id}/suspend",
                                headers=people["admin"].auth),
                    client.delete(f"/org/members/{owner_id}", headers=people["admin"].auth)):
        response = await request
        assert response.status_code == 403, response.text
    owner = await master["members"].find_one({"_id": ObjectId(owner_id)})
    assert (owner["role"], owner["state"], owner["title"]) == ("owner", "active", None)


async def test_the_last_active_owner_cannot_be_demoted_suspended_or_removed(
        client: httpx.AsyncClient, master: Any) -> None:
    people = await team(client)
    owner = people["owner"]

    demoted = await client.patch(f"/org/members/{owner.id}", headers=owner.auth,
                                 json={"role": "admin"})
    suspended = await client.post(f"/org/members/{owner.id}/suspend", headers=owner.auth)
    removed = await client.delete(f"/org/members/{owner.id}", headers=owner.auth)

    assert [r.status_code for r in (demoted, suspended, removed)] == [409, 409, 409]
    stored = await master["members"].find_one({"_id": ObjectId(owner.id)})
    assert (stored["role"], stored["state"]) == ("owner", "active")
    # With a second owner, the first may step down.
    second = await add(client, owner, "owner", "Second Owner")
    assert (await client.patch(f"/org/members/{owner.id}", headers=second.auth,
                               json={"role": "admin"})).status_code == 200


async def test_a_suspended_member_is_refused_at_once_and_comes_back_with_their_role(
        client: httpx.AsyncClient) -> None:
    people = await team(client)
    manager, owner = people["manager"], people["owner"]
    assert (await client.get("/me", headers=manager.auth)).status_code == 200

    suspended = await client.post(f"/org/members/{manager.id}/suspend", headers=owner.auth)

    assert suspended.status_code == 200 and suspended.json()["state"] == "suspended"
    refused = await client.get("/me", headers=manager.auth)
    assert (refused.status_code, refused.json()["error"]) == (403, "member_suspended")
    login = await member_login(client, manager.email)
    assert (login.status_code, login.json()["error"]) == (403, "member_suspended")

    back = await client.post(f"/org/members/{manager.id}/reactivate", headers=owner.auth)
    assert back.status_code == 200
    assert (back.json()["state"], back.json()["role"]) == ("active", "manager")
    assert (await client.get("/me", headers=manager.auth)).status_code == 401  # stays dead
    again = await member_login(client, manager.email)
    assert again.status_code == 200 and again.json()["role"] == "manager"


async def test_a_role_change_takes_effect_on_the_next_request(
        client: httpx.AsyncClient) -> None:
    people = await team(client)
    admin, owner = people["admin"], people["owner"]
    assert (await client.get("/org/audit", headers=admin.auth)).status_code == 200

    demoted = await client.patch(f"/org/members/{admin.id}", headers=owner.auth,
                                 json={"role": "employee"})

    assert demoted.status_code == 200
    refused = await client.get("/org/audit", headers=admin.auth)  # the same token
    assert (refused.status_code, refused.json()["error"]) == (403, "permission_denied")


async def test_a_manager_must_be_an_active_member_of_the_organization_and_no_cycle(
        client: httpx.AsyncClient) -> None:
    people = await team(client)
    other = await team(client, "Globex")
    owner, manager, employee = people["owner"], people["manager"], people["employee"]

    # No such member is a 404, as an id in a path naming nobody; a cycle is a 409 (the
    # hierarchy as it is now forbids it). Either names manager_id.
    cases = {
        "nobody": ("0" * 24, 404),
        "another organization's member": (other["manager"].id, 404),
        "one's own report (a cycle)": (employee.id, 409),
        "oneself": (manager.id, 409),
    }
    for why, (manager_id, status) in cases.items():
        response = await client.patch(f"/org/members/{manager.id}", headers=owner.auth,
                                      json={"manager_id": manager_id})
        assert response.status_code == status, why
        assert "manager_id" in response.json()["detail"], why
    await client.post(f"/org/members/{people['admin'].id}/suspend", headers=owner.auth)
    to_suspended = await client.patch(f"/org/members/{employee.id}", headers=owner.auth,
                                      json={"manager_id": people["admin"].id})
    assert to_suspended.status_code == 404


async def test_reports_direct_and_all_levels_and_removing_a_manager_repoints_them(
        client: httpx.AsyncClient) -> None:
    people = await team(client)
    owner, manager, employee = people["owner"], people["manager"], people["employee"]
    assert (await client.patch(f"/org/members/{manager.id}", headers=owner.auth,
                               json={"manager_id": owner.id})).status_code == 200
    intern = await add(client, owner, "employee", "Intern", manager_id=employee.id)

    direct = await client.get(f"/org/members/{owner.id}/reports", headers=employee.auth)
    everyone = await client.get(f"/org/members/{owner.id}/reports?depth=all",
                                headers=employee.auth)

    assert [m["id"] for m in direct.json()["items"]] == [manager.id]
    assert [(m["id"], m["depth"]) for m in everyone.json()["items"]] == [
        (manager.id, 1), (employee.id, 2), (intern.id, 3)]
    assert (await client.get(f"/org/members/{owner.id}/reports?depth=2",
                             headers=owner.auth)).status_code == 422

    assert (await client.delete(f"/org/members/{manager.id}",
                                headers=owner.auth)).status_code == 204
    moved = await client.get(f"/org/members/{employee.id}", headers=owner.auth)
    assert moved.json()["manager_id"] == owner.id
    assert (await member_login(client, manager.email)).status_code == 401


async def test_the_directory_filters_searches_and_pages_without_gaps(
        client: httpx.AsyncClient) -> None:
    people = await team(client)
    owner = people["owner"]
    for name in ("Zoe Zeta", "Zack Young", "Ann Zed"):
        await add(client, owner, "employee", name, department="Sales")

    def ids(response: httpx.Response) -> list[str]:
        assert response.status_code == 200, response.text
        return [m["name"] for m in response.json()["items"]]

    reader = people["employee"].auth
    assert ids(await client.get("/org/members?q=za", headers=reader)) == ["Zack Young"]
    assert ids(await client.get("/org/members?q=ZO", headers=reader)) == ["Zoe Zeta"]
    assert ids(await client.get("/org/members?q=zack.young@", headers=reader)) == [
        "Zack Young"]
    assert ids(await client.get("/org/members?department=Sales&q=z", headers=reader)) == [
        "Zoe Zeta", "Zack Young"]
    assert ids(await client.get("/org/members?role=manager", headers=reader)) == [
        "Acme Manager"]
    assert ids(await client.get(f"/org/members?manager_id={people['manager'].id}",
                                headers=reader)) == ["Acme Employee"]
    await client.post(f"/org/members/{people['admin'].id}/suspend", headers=owner.auth)
    assert ids(await client.get("/org/members?state=suspended", headers=reader)) == [
        "Acme Admin"]

    seen: list[str] = []
    url = "/org/members?limit=2"
    while url:
        page = await client.get(url, headers=reader)
        seen += ids(page)
        after = page.json()["next"]
        url = f"/org/members?limit=2&after={after}" if after else ""
    assert len(seen) == 7 and len(set(seen)) == 7
    first = await client.get("/org/members?limit=2", headers=reader)
    elsewhere = await client.get(f"/org/members?role=employee&after={first.json()['next']}",
                                 headers=reader)
    assert elsewhere.status_code == 404  # a cursor belongs to its own listing


async def test_members_of_another_organization_are_not_found(
        client: httpx.AsyncClient, master: Any) -> None:
    people = await team(client)
    other = await team(client, "Globex")
    target = other["employee"].id

    for response in (
            await client.get(f"/org/members/{target}", headers=people["owner"].auth),
            await client.patch(f"/org/members/{target}", headers=people["owner"].auth,
                               json={"title": "Spy"}),
            await client.post(f"/org/members/{target}/suspend", headers=people["owner"].auth),
            await client.delete(f"/org/members/{target}", headers=people["owner"].auth)):
        assert response.status_code == 404, response.text
    stored = await master["members"].find_one({"_id": ObjectId(target)})
    assert (stored["state"], stored.get("title")) == ("active", None)
    listed = await client.get("/org/members?limit=200", headers=people["owner"].auth)
    assert target not in {m["id"] for m in listed.json()["items"]}


async def test_ownership_transfer_makes_the_old_owner_an_admin(
        client: httpx.AsyncClient) -> None:
    people = await team(client)
    owner, admin = people["owner"], people["admin"]

    by_admin = await client.post("/org/ownership/transfer", headers=admin.auth,
                                 json={"member_id": admin.id})
    assert by_admin.status_code == 403

    moved = await client.post("/org/ownership/transfer", headers=owner.auth,
                              json={"member_id": admin.id})

    assert moved.status_code == 200 and moved.json()["role"] == "owner"
    former = await client.get("/me", headers=owner.auth)
    assert former.json()["role"] == "admin"
    refused = await client.request("DELETE", "/org/delete", headers=owner.auth,
                                   json={"organization_name": "Acme"})
    assert refused.status_code == 403  # no longer the owner


async def test_me_changes_name_and_title_freely_and_credentials_only_with_the_password(
        client: httpx.AsyncClient, master: Any) -> None:
    people = await team(client)
    employee = people["employee"]

    renamed = await client.patch("/me", headers=employee.auth,
                                 json={"name": "Eve Employee", "title": "Analyst"})
    no_password = await client.patch("/me", headers=employee.auth,
                                     json={"email": "eve@acme.example.com"})
    wrong = await client.patch("/me", headers=employee.auth, json={
        "email": "eve@acme.example.com", "current_password": "not-my-password"})
    taken = await client.patch("/me", headers=employee.auth, json={
        "email": people["owner"].email, "current_password": DEFAULT_PASSWORD})
    role = await client.patch("/me", headers=employee.auth, json={"role": "owner"})

    assert renamed.status_code == 200
    assert (renamed.json()["name"], renamed.json()["title"]) == ("Eve Employee", "Analyst")
    assert (no_password.status_code, no_password.json()["error"]) == (
        401, "insufficient_user_authentication")
    assert (wrong.status_code, wrong.json()["error"]) == (403, "invalid_current_password")
    assert taken.status_code == 409
    assert role.status_code == 422
    changed = await client.patch("/me", headers=employee.auth, json={
        "email": "eve@acme.example.com", "current_password": DEFAULT_PASSWORD})
    assert changed.status_code == 200
    assert changed.json()["email"] == employee.email  # until the new address confirms
    assert changed.json()["pending_email"] == "eve@acme.example.com"
    assert (await client.get("/me", headers=employee.auth)).status_code == 200
    confirmed = await follow_link(client, master, "eve@acme.example.com", CHANGE)
    assert confirmed.status_code == 200, confirmed.text
    assert (await client.get("/me", headers=employee.auth)).status_code == 401
    assert (await member_login(client, "eve@acme.example.com")).status_code == 200


async def test_email_is_unique_across_organizations_case_insensitively(
        client: httpx.AsyncClient) -> None:
    people = await team(client)
    other = await create_org(client, "Globex")

    response = await client.post("/org/members", headers=people["owner"].auth, json={
        "email": other.email.upper(), "password": DEFAULT_PASSWORD, "name": "Dup"})

    assert response.status_code == 409


async def test_member_attributes_follow_the_record_key_rules(
        client: httpx.AsyncClient, master: Any) -> None:
    people = await team(client)
    before = await master["members"].count_documents({})

    bad = await client.post("/org/members", headers=people["owner"].auth, json={
        "email": "x@acme.example.com", "password": DEFAULT_PASSWORD, "name": "X",
        "attributes": {"$where": 1}})
    big = await client.post("/org/members", headers=people["owner"].auth, json={
        "email": "x@acme.example.com", "password": DEFAULT_PASSWORD, "name": "X",
        "attributes": {"blob": "x" * 5000}})

    assert bad.status_code == 422
    assert bad.json()["errors"][0]["loc"] == ["body", "attributes", "$where"]
    assert big.status_code == 413
    assert await master["members"].count_documents({}) == before


async def test_every_member_change_is_audited_with_actor_and_target(
        client: httpx.AsyncClient) -> None:
    people = await team(client)
    owner, employee = people["owner"], people["employee"]
    await client.patch(f"/org/members/{employee.id}", headers=owner.auth,
                       json={"role": "manager"})
    await client.post(f"/org/members/{employee.id}/suspend", headers=owner.auth)
    await client.post(f"/org/members/{employee.id}/reactivate", headers=owner.auth)
    await client.delete(f"/org/members/{employee.id}", headers=owner.auth)
    await client.post("/org/ownership/transfer", headers=owner.auth,
                      json={"member_id": people["admin"].id})

    entries = (await client.get("/org/audit?limit=200", headers=people["admin"].auth)
               ).json()["entries"]
    actions = [(e["action"], e["admin_id"]) for e in entries if e["action"].startswith(
        "member.") and e["outcome"] == "success"]
    assert sorted({action for action, _ in actions}) == sorted({
        "member.create", "member.update", "member.role_change", "member.suspend",
        "member.reactivate", "member.remove", "member.ownership_transfer"})
    assert {actor for _, actor in actions} == {owner.id}
    role_change = next(e for e in entries if e["action"] == "member.role_change")
    assert role_change["target"] == f"{employee.id} employee->manager"


async def test_two_owners_demoting_each_other_at_once_leave_an_owner(
        client: httpx.AsyncClient, master: Any, services: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    people = await team(client)
    first = people["owner"]
    second = await add(client, first, "owner", "Second Owner")
    # Both demotions are written before either counts the owners left: each sees none.
    both_written = asyncio.Barrier(2)
    count = services.member_repository.active_owners

    async def after_both(organization_id: Any) -> int:
        await asyncio.wait_for(both_written.wait(), 10)
        return int(await count(organization_id))

    monkeypatch.setattr(services.member_repository, "active_owners", after_both)
    answers = await asyncio.gather(
        client.patch(f"/org/members/{second.id}", headers=first.auth, json={"role": "admin"}),
        client.patch(f"/org/members/{first.id}", headers=second.auth, json={"role": "admin"}))

    assert sorted(r.status_code for r in answers) in ([200, 409], [409, 409])
    owners = await master["members"].count_documents(
        {"organization_id": ObjectId(people["org"].id), "role": "owner", "state": "active"})
    assert owners >= 1


async def test_a_rename_keeps_the_members_and_their_tokens(
        client: httpx.AsyncClient) -> None:
    people = await team(client)

    renamed = await client.put("/org/update", headers=people["owner"].auth, json={
        "old_organization_name": "Acme", "new_organization_name": "Acme Renamed"})

    assert renamed.status_code == 200
    employee = people["employee"]
    assert (await client.get("/me", headers=employee.auth)).status_code == 200
    assert len((await client.get("/org/members", headers=employee.auth)).json()["items"]) == 4


async def test_deleting_the_organization_removes_its_members_and_ends_their_tokens(
        client: httpx.AsyncClient, master: Any) -> None:
    # (Not right after a rename: a delete then waits out the rename's settling, 20 s with
    # the tests' tenant deadline.)
    people = await team(client)
    employee = people["employee"]

    deleted = await client.request("DELETE", "/org/delete", headers=people["owner"].auth,
                                   json={"organization_name": "Acme"})

    assert deleted.status_code == 200
    assert await master["members"].count_documents(
        {"organization_id": ObjectId(people["org"].id)}) == 0
    assert (await client.get("/me", headers=employee.auth)).status_code == 401
    assert (await member_login(client, employee.email)).status_code == 401


async def test_an_adder_suspended_while_the_new_password_hashes_adds_nobody(
        client: httpx.AsyncClient, master: Any, services: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    people = await team(client)
    admin, owner = people["admin"], people["owner"]
    hashing, release = asyncio.Event(), asyncio.Event()
    hash_password = services.hasher.hash

    async def held(password: str) -> str:
        hashing.set()
        await asyncio.wait_for(release.wait(), 10)
        return str(await hash_password(password))

    monkeypatch.setattr(services.hasher, "hash", held)
    adding = asyncio.create_task(client.post("/org/members", headers=admin.auth, json={
        "email": "late@acme.example.com", "password": DEFAULT_PASSWORD, "name": "Late"}))
    await asyncio.wait_for(hashing.wait(), 10)
    monkeypatch.setattr(services.hasher, "hash", hash_password)
    suspended = await client.post(f"/org/members/{admin.id}/suspend", headers=owner.auth)
    release.set()
    added = await adding

    assert suspended.status_code == 200
    assert (added.status_code, added.json()["error"]) == (403, "member_suspended")
    assert await master["members"].count_documents({"email_key": "late@acme.example.com"}) == 0
