"""Every login, organization change, credential change and refused cross-tenant attempt is
in `audit_log`, and each organization reads only its own, newest first."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from bson import ObjectId

from tests.helpers import Org, create_org

CLIENT_ADDRESS = "203.0.113.7"


async def entries(master: Any, **query: Any) -> list[dict[str, Any]]:
    return await master["audit_log"].find(query).sort("_id", 1).to_list(None)


async def only(master: Any, **query: Any) -> dict[str, Any]:
    found = await entries(master, **query)
    assert len(found) == 1, found
    return found[0]


async def test_login_success_and_failure_are_recorded(client: httpx.AsyncClient,
                                                      master: Any) -> None:
    org = await create_org(client, "Acme")
    await client.post("/admin/login", json={"email": org.email, "password": "wrong-password"},
                      headers={"X-Request-ID": "req-42"})
    await client.post("/admin/login", json={"email": "ghost@example.com", "password": "xx"})
    success = await only(master, action="admin.login", outcome="success")
    assert success["organization_id"] == ObjectId(org.id) and success["admin_id"] is not None
    assert success["client_address"] == CLIENT_ADDRESS and success["target"] == org.email
    wrong, unknown = await entries(master, action="admin.login", outcome="failure")
    assert wrong["request_id"] == "req-42"
    assert wrong["organization_id"] == ObjectId(org.id) and wrong["reason"] == "unauthorized"
    assert unknown["organization_id"] is None and unknown["admin_id"] is None
    assert re.fullmatch(r"[0-9a-f]{32}", unknown["request_id"])


@pytest.mark.parametrize("request_id", [b"x" * 129, b"has spaces", "new\u2028line".encode()])
async def test_unusable_request_id_is_replaced(client: httpx.AsyncClient, master: Any,
                                               request_id: bytes) -> None:
    await client.post("/admin/login", json={"email": "a@b.example.com", "password": "whatever"},
                      headers={"X-Request-ID": request_id})
    entry = await only(master, action="admin.login")
    assert re.fullmatch(r"[0-9a-f]{32}", entry["request_id"])


async def test_throttled_login_is_recorded(client: httpx.AsyncClient, master: Any) -> None:
    org = await create_org(client, "Acme")
    for _ in range(6):
        await client.post("/admin/login", json={"email": org.email, "password": "wrong-pw"})
    entry = await only(master, action="admin.login", outcome="throttled")
    assert entry["reason"] == "too_many_requests"


async def test_organization_create_is_recorded(client: httpx.AsyncClient, master: Any) -> None:
    org = await create_org(client, "Acme")
    created = await only(master, action="organization.create")
    assert created["outcome"] == "success" and created["organization_id"] == ObjectId(org.id)
    assert created["target"] == "Acme"
    clash = await client.post("/org/create", json={
        "organization_name": "ACME", "email": "other@example.com", "password": "secure123"})
    assert clash.status_code == 409
    failed = await only(master, action="organization.create", outcome="failure")
    assert failed["reason"] == "conflict" and failed["organization_id"] is None


async def test_update_and_credential_change_are_recorded(client: httpx.AsyncClient,
                                                         master: Any) -> None:
    org = await create_org(client, "Acme")
    response = await client.put("/org/update", headers=org.auth, json={
        "old_organization_name": "Acme", "new_organization_name": "Acme Two",
        "password": "brand-new-password"})
    assert response.status_code == 200
    update = await only(master, action="organization.update")
    assert update["outcome"] == "success" and update["organization_id"] == ObjectId(org.id)
    change = await only(master, action="admin.credentials_change")
    assert change["target"] == "password" and change["admin_id"] == update["admin_id"]


async def test_rename_alone_is_not_a_credential_change(client: httpx.AsyncClient,
                                                       master: Any) -> None:
    org = await create_org(client, "Acme")
    await client.put("/org/update", headers=org.auth, json={
        "old_organization_name": "Acme", "new_organization_name": "Acme Two"})
    assert await entries(master, action="admin.credentials_change") == []


async def test_delete_is_recorded(client: httpx.AsyncClient, master: Any) -> None:
    org = await create_org(client, "Acme")
    response = await client.request("DELETE", "/org/delete", headers=org.auth,
                                    json={"organization_name": "Acme"})
    assert response.status_code == 200
    entry = await only(master, action="organization.delete")
    assert entry["outcome"] == "success" and entry["organization_id"] == ObjectId(org.id)


async def test_refused_cross_tenant_attempts_are_recorded(client: httpx.AsyncClient,
                                                          master: Any) -> None:
    acme, globex = await create_org(client, "Acme"), await create_org(client, "Globex")
    await client.get("/admin/me", headers={**acme.auth, "X-Organization-ID": globex.id})
    await client.put("/org/update", headers=acme.auth, json={
        "old_organization_name": "Globex", "new_organization_name": "Mine"})
    await client.request("DELETE", "/org/delete", headers=acme.auth,
                         json={"organization_name": "Globex"})
    mismatch = await only(master, action="tenant.header_mismatch")
    update = await only(master, action="organization.update")
    delete = await only(master, action="organization.delete")
    for entry in (mismatch, update, delete):
        assert entry["outcome"] == "denied" and entry["reason"] == "forbidden"
        assert entry["organization_id"] == ObjectId(acme.id)
        assert entry["client_address"] == CLIENT_ADDRESS
    assert mismatch["target"] == globex.id
    assert update["target"] == delete["target"] == "Globex"


async def test_entries_never_hold_secrets(client: httpx.AsyncClient, master: Any) -> None:
    org = await create_org(client, "Acme", password="first-secret-pw")
    await client.post("/admin/login", json={"email": org.email, "password": "guessed-secret"})
    await client.put("/org/update", headers=org.auth, json={
        "old_organization_name": "Acme", "new_organization_name": "Acme",
        "password": "second-secret-pw"})
    stored = str(await entries(master)) + str(await master["login_failures"].find().to_list(None))
    hashes = [admin["password_hash"] for admin in await master["members"].find().to_list(None)]
    for secret in ["first-secret-pw", "guessed-secret", "second-secret-pw", org.token,
                   "$2b$", *hashes]:
        assert secret not in stored


async def make_history(client: httpx.AsyncClient, org: Org, failures: int) -> None:
    for _ in range(failures):
        await client.post("/admin/login", json={"email": org.email, "password": "wrong-pw"})


async def test_audit_pages_newest_first(client: httpx.AsyncClient, master: Any, services: Any,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # One entry per failed login here (identical ones would collapse: test_collapse.py).
    monkeypatch.setattr(services.audit, "collapse_seconds", 0)
    org = await create_org(client, "Acme")
    # With create, its verification mail and login: 6 entries
    await make_history(client, org, 3)
    seen: list[dict[str, Any]] = []
    before = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"before": before} if before else {})}
        page = await client.get("/org/audit", headers=org.auth, params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["entries"]) <= 2
        seen += body["entries"]
        before = body["next_cursor"]
        if before is None:
            break
    stored = await entries(master, organization_id=ObjectId(org.id))
    assert [entry["id"] for entry in seen] == [str(doc["_id"]) for doc in reversed(stored)]
    assert len(seen) == 6
    assert seen[-1]["action"] == "organization.create"
    assert seen[-2]["action"] == "email_verification.send"
    assert seen[0]["action"] == "admin.login" and seen[0]["outcome"] == "failure"


async def test_audit_pages_with_after_and_next_like_records_and_the_old_names_still_work(
        client: httpx.AsyncClient, services: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services.audit, "collapse_seconds", 0)
    org = await create_org(client, "Acme")
    await make_history(client, org, 3)

    async def walk(cursor_param: str, cursor_field: str) -> list[str]:
        ids: list[str] = []
        cursor = None
        while True:
            params = {"limit": 2, **({cursor_param: cursor} if cursor else {})}
            body = (await client.get("/org/audit", headers=org.auth, params=params)).json()
            assert body["next"] == body["next_cursor"]  # one cursor, two names
            ids += [entry["id"] for entry in body["entries"]]
            cursor = body[cursor_field]
            if cursor is None:
                return ids

    assert await walk("after", "next") == await walk("before", "next_cursor")
    assert len(await walk("after", "next")) == 6
    first = (await client.get("/org/audit", headers=org.auth, params={"limit": 1})).json()
    both = await client.get("/org/audit", headers=org.auth, params={
        "limit": 1, "after": first["next"], "before": "another"})
    assert both.status_code == 400 and "not both" in both.json()["detail"]


async def test_audit_of_another_tenant_is_never_shown(client: httpx.AsyncClient,
                                                      master: Any) -> None:
    acme, globex = await create_org(client, "Acme"), await create_org(client, "Globex")
    globex_newest = (await entries(master, organization_id=ObjectId(globex.id)))[-1]
    body = (await client.get("/org/audit", headers=acme.auth, params={"limit": 1})).json()
    assert {entry["organization_id"] for entry in body["entries"]} == {acme.id}
    assert str(globex_newest["_id"]) not in {entry["id"] for entry in body["entries"]}
    # Globex's own cursor is signed for Globex's listing: Acme cannot page with it.
    globex_page = (await client.get("/org/audit", headers=globex.auth,
                                    params={"limit": 1})).json()
    assert globex_page["next_cursor"]
    refused = await client.get("/org/audit", headers=acme.auth,
                               params={"before": globex_page["next_cursor"]})
    assert refused.status_code == 404  # it names no page of Acme's trail


@pytest.mark.parametrize("params", [
    {"limit": 0}, {"limit": 201}, {"limit": -1}, {"limit": "ten"},
    {"before": "not a cursor!"}, {"before": "x" * 2049}, {"after": "not a cursor!"},
])
async def test_bad_paging_parameters_are_refused(client: httpx.AsyncClient,
                                                 params: dict[str, Any]) -> None:
    org = await create_org(client, "Acme")
    response = await client.get("/org/audit", headers=org.auth, params=params)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "validation_error"


async def test_limit_up_to_200_is_accepted(client: httpx.AsyncClient) -> None:
    org = await create_org(client, "Acme")
    response = await client.get("/org/audit", headers=org.auth, params={"limit": 200})
    assert response.status_code == 200
    assert response.json()["next_cursor"] is None
