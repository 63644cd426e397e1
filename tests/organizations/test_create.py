"""Creating organizations: the collection exists at once, and uniqueness holds under races."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.helpers import create_org

BODY = {"organization_name": "Acme Corp", "email": "admin@acme.com", "password": "secure123"}


async def test_collection_is_created_explicitly_with_default_indexes(
        client: httpx.AsyncClient, master) -> None:
    await create_org(client, "Acme Corp")
    assert "org_acme_corp" in await master.list_collection_names()
    assert await master["org_acme_corp"].count_documents({}) == 0
    index_names = {i["name"] async for i in await master["org_acme_corp"].list_indexes()}
    assert {"kind_id", "kind_created"} <= index_names


async def test_stored_admin_has_a_bcrypt_hash_never_returned(client: httpx.AsyncClient,
                                                             master) -> None:
    created = await client.post("/org/create", json=BODY)
    assert "password" not in created.text and "$2b$" not in created.text
    admin = await master["members"].find_one({"email_key": "admin@acme.com"})
    assert admin["password_hash"].startswith("$2b$04$")
    assert "secure123" not in str(admin)
    got = await client.post("/org/get", json={"organization_name": "Acme Corp"})
    assert "admin" not in got.text and "hash" not in got.text


@pytest.mark.parametrize("same_slug", ["Acme Corp", "acme  corp", "ACME-Corp", " Acme Corp "])
async def test_names_with_the_same_slug_are_one_organization(
        client: httpx.AsyncClient, master, same_slug: str) -> None:
    assert (await client.post("/org/create", json=BODY)).status_code == 201
    again = await client.post("/org/create", json={
        **BODY, "organization_name": same_slug, "email": "other@acme.com"})
    assert again.status_code == 409
    assert again.json()["error"] == "conflict"
    assert await master["organizations"].count_documents({}) == 1
    assert await master["members"].count_documents({}) == 1


async def test_get_finds_an_organization_by_any_name_with_its_slug(
        client: httpx.AsyncClient) -> None:
    await create_org(client, "Acme Corp")
    got = await client.post("/org/get", json={"organization_name": "ACME-corp"})
    assert got.status_code == 200 and got.json()["organization_name"] == "Acme Corp"


async def test_admin_emails_are_unique_case_insensitively(client: httpx.AsyncClient,
                                                          master) -> None:
    assert (await client.post("/org/create", json=BODY)).status_code == 201
    taken = await client.post("/org/create", json={
        "organization_name": "Other Org", "email": "ADMIN@Acme.com", "password": "secure123"})
    assert taken.status_code == 409
    # the failed create left nothing behind: no organization, no collection
    assert await master["organizations"].count_documents({}) == 1
    assert "org_other_org" not in await master.list_collection_names()


async def test_login_email_is_case_insensitive(client: httpx.AsyncClient) -> None:
    await client.post("/org/create", json=BODY)
    ok = await client.post("/admin/login", json={"email": "Admin@ACME.com",
                                                  "password": "secure123"})
    assert ok.status_code == 200


async def test_twenty_concurrent_identical_creates_make_one_organization(
        client: httpx.AsyncClient, master) -> None:
    responses = await asyncio.gather(*(client.post("/org/create", json=BODY) for _ in range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 19
    assert await master["organizations"].count_documents({}) == 1
    assert await master["members"].count_documents({}) == 1
    assert [n for n in await master.list_collection_names() if n.startswith("org_")] == [
        "org_acme_corp"]


async def test_concurrent_creates_of_different_names_with_one_email(
        client: httpx.AsyncClient, master) -> None:
    bodies = [{**BODY, "organization_name": f"Acme {i}"} for i in range(8)]
    responses = await asyncio.gather(*(client.post("/org/create", json=b) for b in bodies))
    assert sorted(r.status_code for r in responses) == [201] + [409] * 7
    assert await master["organizations"].count_documents({}) == 1
    assert len([n for n in await master.list_collection_names() if n.startswith("org_")]) == 1


async def test_a_create_whose_collection_already_exists_is_409_and_leaves_nothing(
        client: httpx.AsyncClient, master) -> None:
    await master.create_collection("org_acme_corp")
    await master["org_acme_corp"].insert_one({"foreign": True})
    response = await client.post("/org/create", json=BODY)
    assert response.status_code == 409
    assert await master["organizations"].count_documents({}) == 0
    assert await master["members"].count_documents({}) == 0
    assert await master["org_acme_corp"].count_documents({"foreign": True}) == 1


async def test_get_absent_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/org/get", json={"organization_name": "Nobody Here"})
    assert response.status_code == 404
    assert "Nobody Here" in response.json()["detail"]
