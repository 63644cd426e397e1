"""Passwords and login: bcrypt off the event loop, lengths, and no account enumeration."""

from __future__ import annotations

import threading
from typing import Any

import bcrypt
import httpx
import pytest

from tests.helpers import DEFAULT_PASSWORD, calls_to, create_org, login


async def attempt(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/admin/login", json={"email": email, "password": password})


@pytest.mark.parametrize(("password", "status"), [
    ("x" * 7, 422), ("x" * 8, 201), ("é" * 128, 201), ("x" * 129, 422), ("", 422),
])
async def test_passwords_are_8_to_128_characters(client: httpx.AsyncClient, password: str,
                                                 status: int) -> None:
    response = await client.post("/org/create", json={
        "organization_name": "Acme", "email": "a@acme.example.com", "password": password})
    assert response.status_code == status, response.text
    if status == 422:
        assert response.json()["errors"][0]["loc"] == ["body", "password"]
        assert password not in response.text or not password


async def test_new_password_on_update_is_length_checked(client: httpx.AsyncClient) -> None:
    org = await create_org(client, "Acme")
    response = await client.put("/org/update", headers=org.auth, json={
        "old_organization_name": "Acme", "new_organization_name": "Acme", "password": "short"})
    assert response.status_code == 422
    assert (await client.get("/admin/me", headers=org.auth)).status_code == 200


async def test_every_character_of_a_long_password_counts(client: httpx.AsyncClient) -> None:
    # 100 characters, 200 UTF-8 bytes: bcrypt alone would read only the first 72 bytes.
    password = "ü" * 100
    org = await create_org(client, "Acme", password=password)
    assert (await attempt(client, org.email, password[:-1] + "u")).status_code == 401
    assert (await attempt(client, org.email, password[:36])).status_code == 401
    await login(client, org.email, password)


@pytest.mark.parametrize("length", [129, 10_000, 500_000])
async def test_over_long_password_at_login_is_a_plain_401(client: httpx.AsyncClient,
                                                          length: int) -> None:
    org = await create_org(client, "Acme")
    response = await attempt(client, org.email, "x" * length)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_unknown_email_and_wrong_password_answer_alike(client: httpx.AsyncClient) -> None:
    org = await create_org(client, "Acme")
    wrong_password = await attempt(client, org.email, "not-the-password")
    unknown_email = await attempt(client, "nobody@acme.example.com", "not-the-password")
    assert wrong_password.status_code == unknown_email.status_code == 401
    assert wrong_password.content == unknown_email.content
    assert wrong_password.json() == {"error": "unauthorized",
                                     "detail": "Invalid email or password"}
    assert (wrong_password.headers["WWW-Authenticate"]
            == unknown_email.headers["WWW-Authenticate"])


async def test_unknown_email_still_runs_bcrypt_in_the_thread_pool(
        client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    org = await create_org(client, "Acme")
    checks = calls_to(monkeypatch, bcrypt, "checkpw")
    assert (await attempt(client, "nobody@acme.example.com", "whatever-pw")).status_code == 401
    assert (await attempt(client, org.email, "whatever-pw")).status_code == 401
    # One full bcrypt check per attempt, against a real (dummy) hash of the same cost, and
    # never on the event loop.
    assert len(checks) == 2
    (_, dummy), (_, real) = checks
    assert dummy != real and dummy[:7] == real[:7]  # "$2b$04$": same algorithm and cost
    assert threading.current_thread() not in checks.threads


async def test_a_create_hashes_the_password_in_the_thread_pool(
        client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    # On the event loop, one create would stall every other request for a full hash.
    hashed = calls_to(monkeypatch, bcrypt, "hashpw")
    response = await client.post("/org/create", json={
        "organization_name": "Acme", "email": "a@acme.example.com", "password": "secure123"})
    assert response.status_code == 201, response.text
    assert len(hashed) == 1
    assert hashed.threads[0] is not threading.current_thread()


@pytest.mark.parametrize("change", [
    {"password": "newsecure123"},
    {"password": "newsecure123", "current_password": DEFAULT_PASSWORD,
     "new_organization_name": "Acme Two"},
], ids=["fresh-login", "current-password"])
async def test_a_password_change_hashes_and_checks_in_the_thread_pool(
        client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch,
        change: dict[str, str]) -> None:
    org = await create_org(client, "Acme")
    hashed = calls_to(monkeypatch, bcrypt, "hashpw")
    checked = calls_to(monkeypatch, bcrypt, "checkpw")
    response = await client.put("/org/update", headers=org.auth, json={
        "old_organization_name": "Acme", "new_organization_name": "Acme", **change})
    assert response.status_code == 200, response.text
    assert len(hashed) == 1 and len(checked) == ("current_password" in change)
    assert threading.current_thread() not in hashed.threads + checked.threads


async def test_admin_of_a_vanished_organization_cannot_log_in(client: httpx.AsyncClient,
                                                              master: Any) -> None:
    org = await create_org(client, "Acme")
    await master["organizations"].delete_many({})
    response = await attempt(client, org.email, org.password)
    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid email or password"
