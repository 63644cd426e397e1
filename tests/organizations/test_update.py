"""Renames move the collection whole; credentials change; nothing else is touched."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.helpers import create_org, login


async def test_rename_moves_every_document(client: httpx.AsyncClient, master) -> None:
    org = await create_org(client, "Acme Corp")
    await master[org.collection_name].insert_many([{"i": i} for i in range(300)])
    response = await client.put("/org/update", headers=org.auth, json={
        "old_organization_name": "Acme Corp", "new_organization_name": "Acme Industries"})
    assert response.status_code == 200, response.text
    assert response.json()["collection_name"] == "org_acme_industries"
    names = await master.list_collection_names()
    assert "org_acme_corp" not in names
    assert sorted([d["i"] async for d in master["org_acme_industries"].find()]) == list(
        range(300))
    # a rename keeps the organization id, so the token still works
    me = await client.post("/org/get", json={"organization_name": "Acme Industries"})
    assert me.json()["id"] == org.id


async def test_rename_to_a_taken_name_is_409_and_moves_nothing(client: httpx.AsyncClient,
                                                               master) -> None:
    acme = await create_org(client, "Acme Corp")
    await create_org(client, "Globex")
    await master[acme.collection_name].insert_one({"keep": True})
    response = await client.put("/org/update", headers=acme.auth, json={
        "old_organization_name": "Acme Corp", "new_organization_name": "GLOBEX"})
    assert response.status_code == 409
    assert await master["org_acme_corp"].count_documents({"keep": True}) == 1
    assert await master["org_globex"].count_documents({}) == 0
    org = await master["organizations"].find_one({"slug": "acme_corp"})
    assert org["organization_name"] == "Acme Corp"


async def test_rename_onto_an_existing_foreign_collection_is_409(client: httpx.AsyncClient,
                                                                 master) -> None:
    acme = await create_org(client, "Acme Corp")
    await master.create_collection("org_initech")
    response = await client.put("/org/update", headers=acme.auth, json={
        "old_organization_name": "Acme Corp", "new_organization_name": "Initech"})
    assert response.status_code == 409
    assert "org_acme_corp" in await master.list_collection_names()


async def test_only_the_own_organization_can_be_updated(client: httpx.AsyncClient,
                                                        master) -> None:
    acme = await create_org(client, "Acme Corp")
    await create_org(client, "Globex")
    response = await client.put("/org/update", headers=acme.auth, json={
        "old_organization_name": "Globex", "new_organization_name": "Globex Two"})
    assert response.status_code == 403
    assert "org_globex" in await master.list_collection_names()
    assert await master["organizations"].count_documents({"slug": "globex"}) == 1


async def test_same_slug_new_spelling_renames_without_moving(client: httpx.AsyncClient,
                                                             master) -> None:
    org = await create_org(client, "Acme Corp")
    response = await client.put("/org/update", headers=org.auth, json={
        "old_organization_name": "Acme Corp", "new_organization_name": "ACME Corp"})
    assert response.status_code == 200
    assert response.json()["organization_name"] == "ACME Corp"
    assert response.json()["collection_name"] == "org_acme_corp"


async def test_password_change_replaces_the_old_one(client: httpx.AsyncClient) -> None:
    org = await create_org(client, "Acme Corp")
    response = await client.put("/org/update", headers=org.auth, json={
        "old_organization_name": "Acme Corp", "new_organization_name": "Acme Corp",
        "password": "brand-new-pass"})
    assert response.status_code == 200
    old = await client.post("/admin/login", json={"email": org.email, "password": org.password})
    assert old.status_code == 401
    assert await login(client, org.email, "brand-new-pass")


async def test_email_taken_by_another_admin_is_409_and_nothing_moves(
        client: httpx.AsyncClient, master) -> None:
    acme = await create_org(client, "Acme Corp")
    globex = await create_org(client, "Globex")
    response = await client.put("/org/update", headers=acme.auth, json={
        "old_organization_name": "Acme Corp", "new_organization_name": "Acme Two",
        "email": globex.email.upper()})
    assert response.status_code == 409
    assert "org_acme_corp" in await master.list_collection_names()
    assert "org_acme_two" not in await master.list_collection_names()


async def test_update_without_token_is_401(client: httpx.AsyncClient) -> None:
    await create_org(client, "Acme Corp")
    response = await client.put("/org/update", json={
        "old_organization_name": "Acme Corp", "new_organization_name": "X Corp"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_delete_drops_the_collection_and_only_the_own(client: httpx.AsyncClient,
                                                            master) -> None:
    acme = await create_org(client, "Acme Corp")
    await create_org(client, "Globex")
    refused = await client.request("DELETE", "/org/delete", headers=acme.auth,
                                   json={"organization_name": "Globex"})
    assert refused.status_code == 403
    assert "org_globex" in await master.list_collection_names()
    done = await client.request("DELETE", "/org/delete", headers=acme.auth,
                                json={"organization_name": "Acme Corp"})
    assert done.status_code == 200 and done.json()["deleted"] is True
    names = await master.list_collection_names()
    assert "org_acme_corp" not in names and "org_globex" in names
    assert await master["members"].count_documents({"email_key": acme.email}) == 0


async def _state(master) -> tuple[list, list]:
    return (await master["organizations"].find({}).to_list(None),
            sorted(await master.list_collection_names()))


async def test_another_organization_named_as_old_with_the_own_name_as_new_is_403(
        client: httpx.AsyncClient, master) -> None:
    # Not an idempotent retry of a rename: Acme was never called Globex. The audit trail
    # must not say that Acme renamed Globex successfully.
    acme = await create_org(client, "Acme Corp")
    globex = await create_org(client, "Globex")
    await master[globex.collection_name].insert_one({"victim": True})
    before = await _state(master)
    response = await client.put("/org/update", headers=acme.auth, json={
        "old_organization_name": "Globex", "new_organization_name": "Acme Corp"})
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "forbidden"
    assert await _state(master) == before
    assert await master["org_globex"].count_documents({"victim": True}) == 1
    entries = await master["audit_log"].find({"action": "organization.update"}).to_list(None)
    assert [(e["outcome"], e["target"], e["reason"]) for e in entries] == [
        ("denied", "Globex", "forbidden")]


async def test_a_retry_of_a_completed_rename_answers_200(client: httpx.AsyncClient,
                                                         master) -> None:
    org = await create_org(client, "Acme Corp")
    await master[org.collection_name].insert_one({"keep": True})
    rename = {"old_organization_name": "Acme Corp", "new_organization_name": "Acme Industries"}
    first = await client.put("/org/update", headers=org.auth, json=rename)
    assert first.status_code == 200, first.text
    stored = await master["organizations"].find_one({})
    assert stored["previous_slug"] == "acme_corp"
    retried = await client.put("/org/update", headers=org.auth, json=rename)
    assert retried.status_code == 200, retried.text
    assert retried.json() == first.json()
    assert await master["org_acme_industries"].count_documents({"keep": True}) == 1
    # The previous name is accepted only as a retry of the rename to the current name.
    elsewhere = await client.put("/org/update", headers=org.auth, json={
        "old_organization_name": "Acme Corp", "new_organization_name": "Acme Three"})
    assert elsewhere.status_code == 403, elsewhere.text
    assert "org_acme_three" not in await master.list_collection_names()


async def test_a_password_change_revoked_while_it_hashed_changes_nothing(
        client: httpx.AsyncClient, services: Any, monkeypatch: Any) -> None:
    # Two changes with one token; the first is held in its bcrypt hash while the second
    # completes (revoking the token). The first then must not overwrite the second.
    org = await create_org(client, "Acme")
    held, release = asyncio.Event(), asyncio.Event()
    real_hash = services.hasher.hash

    async def held_hash(password: str) -> str:
        if password == "first-new-password":
            held.set()
            await release.wait()
        hashed: str = await real_hash(password)
        return hashed

    monkeypatch.setattr(services.hasher, "hash", held_hash)
    change = {"old_organization_name": "Acme", "new_organization_name": "Acme"}
    first = asyncio.create_task(client.put("/org/update", headers=org.auth, json={
        **change, "password": "first-new-password"}))
    await asyncio.wait_for(held.wait(), 10)
    second = await client.put("/org/update", headers=org.auth, json={
        **change, "password": "second-new-password"})
    assert second.status_code == 200, second.text
    release.set()

    response = await first
    assert response.status_code == 401, response.text
    await login(client, org.email, "second-new-password")
    refused = await client.post("/admin/login", json={
        "email": org.email, "password": "first-new-password"})
    assert refused.status_code == 401
