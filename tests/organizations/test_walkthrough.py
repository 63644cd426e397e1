"""The original design's Postman walkthrough, step by step, every field and status."""

from __future__ import annotations

from datetime import datetime

import httpx

from tests.helpers import login
from tests.recovery.support import queued_token


def _is_iso_utc(value: str) -> bool:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0


async def test_create_login_get_update_delete(client: httpx.AsyncClient, master) -> None:
    # 1. create
    created = await client.post("/org/create", json={
        "organization_name": "Test Company", "email": "admin@test.com", "password": "secure123"})
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {"id", "organization_name", "collection_name", "admin_email", "created_at"}
    assert body["organization_name"] == "Test Company"
    assert body["collection_name"] == "org_test_company"
    assert body["admin_email"] == "admin@test.com"
    assert isinstance(body["id"], str) and len(body["id"]) == 24
    assert _is_iso_utc(body["created_at"])
    assert "org_test_company" in await master.list_collection_names()
    await master["org_test_company"].insert_many([{"n": i} for i in range(25)])

    # 2. login
    logged_in = await client.post("/admin/login",
                                  json={"email": "admin@test.com", "password": "secure123"})
    assert logged_in.status_code == 200
    session = logged_in.json()
    assert session["token_type"] == "bearer"
    assert session["organization_name"] == "Test Company"
    assert session["email"] == "admin@test.com"
    assert session["admin_id"] and session["access_token"].count(".") == 2
    auth = {"Authorization": f"Bearer {session['access_token']}"}

    # 3. get
    got = await client.post("/org/get", json={"organization_name": "Test Company"})
    assert got.status_code == 200
    org = got.json()
    assert set(org) == {"id", "organization_name", "collection_name", "created_at", "updated_at"}
    assert org["id"] == body["id"] and org["collection_name"] == "org_test_company"
    assert _is_iso_utc(org["updated_at"])

    # 4. update with data migration (rename + new credentials): the password at once, the
    # email once the new address confirms its link
    updated = await client.put("/org/update", headers=auth, json={
        "old_organization_name": "Test Company", "new_organization_name": "Test Corp Updated",
        "email": "newemail@test.com", "password": "newsecure123"})
    assert updated.status_code == 200, updated.text
    after = updated.json()
    assert set(after) == set(org) | {"pending_email"}
    assert after["pending_email"] == "newemail@test.com"
    assert after["id"] == body["id"]
    assert after["organization_name"] == "Test Corp Updated"
    assert after["collection_name"] == "org_test_corp_updated"
    names = await master.list_collection_names()
    assert "org_test_company" not in names and "org_test_corp_updated" in names
    assert await master["org_test_corp_updated"].count_documents({}) == 25
    old_login = await client.post("/admin/login",
                                  json={"email": "admin@test.com", "password": "secure123"})
    assert old_login.status_code == 401
    assert (await client.post("/admin/login", json={
        "email": "newemail@test.com", "password": "newsecure123"})).status_code == 401
    await login(client, "admin@test.com", "newsecure123")  # until the new address confirms
    link = await queued_token(master, "newemail@test.com", "email_change")
    confirmed = await client.post("/auth/verify-email", json={"token": link})
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["email"] == "newemail@test.com"
    assert (await client.post("/admin/login", json={
        "email": "admin@test.com", "password": "newsecure123"})).status_code == 401
    token = await login(client, "newemail@test.com", "newsecure123")
    assert (await client.post("/org/get", json={"organization_name": "Test Company"})
            ).status_code == 404

    # 5. delete
    deleted = await client.request("DELETE", "/org/delete",
                                   headers={"Authorization": f"Bearer {token}"},
                                   json={"organization_name": "Test Corp Updated"})
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["deleted"] is True
    assert "org_test_corp_updated" not in await master.list_collection_names()
    assert await master["organizations"].count_documents({}) == 0
    assert await master["members"].count_documents({}) == 0
    gone = await client.post("/org/get", json={"organization_name": "Test Corp Updated"})
    assert gone.status_code == 404
    assert gone.json()["error"] == "not_found"


async def test_health_and_ready(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200


async def test_openapi_documents_every_route(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    for path, method in [("/org/create", "post"), ("/org/get", "post"), ("/org/update", "put"),
                         ("/org/delete", "delete"), ("/admin/login", "post")]:
        operation = spec["paths"][path][method]
        assert "requestBody" in operation
        assert "422" in operation["responses"]
    assert (await client.get("/docs")).status_code == 200
    assert (await client.get("/redoc")).status_code == 200
