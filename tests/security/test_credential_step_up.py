"""A stolen token is not a takeover: changing the admin's email or password needs a recent
login (the token's `auth_time`) or the current password, and a wrong current password
counts as a failed login."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest

from tests.helpers import Org, create_org, login
from tests.verification.support import CHANGE, follow_link

ACME = "Acme Corp"


def with_auth_time(settings: Any, org: Org, auth_time: float | None) -> dict[str, str]:
    """The org's own token, re-signed with another `auth_time` (None: the claim removed,
    as on tokens issued before step-up existed)."""
    claims = jwt.decode(org.token, options={"verify_signature": False})
    claims.pop("auth_time", None)
    if auth_time is not None:
        claims["auth_time"] = int(auth_time)
    token = jwt.encode(claims, settings.JWT_SECRET_KEY.get_secret_value(), algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}


def old_token(settings: Any, org: Org) -> dict[str, str]:
    return with_auth_time(settings, org, time.time()
                          - settings.CREDENTIAL_CHANGE_MAX_AGE_SECONDS - 60)


async def update(client: httpx.AsyncClient, headers: dict[str, str], **body: Any
                 ) -> httpx.Response:
    return await client.put("/org/update", headers=headers, json={
        "old_organization_name": ACME, "new_organization_name": ACME, **body})


async def snapshot(master: Any) -> tuple[list[Any], list[Any]]:
    return (await master["members"].find({}).to_list(None),
            await master["organizations"].find({}).to_list(None))


def assert_step_up_required(response: httpx.Response, settings: Any) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "insufficient_user_authentication"
    # RFC 9470: the challenge names the error and the largest acceptable age of the login.
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="insufficient_user_authentication"' in challenge
    assert f"max_age={settings.CREDENTIAL_CHANGE_MAX_AGE_SECONDS}" in challenge


async def test_login_token_carries_the_time_of_the_password_check(
        client: httpx.AsyncClient) -> None:
    before = int(time.time())
    org = await create_org(client, ACME)
    claims = jwt.decode(org.token, options={"verify_signature": False})
    assert before - 1 <= claims["auth_time"] <= int(time.time()) + 1


async def test_fresh_login_changes_credentials_at_once(client: httpx.AsyncClient,
                                                       master: Any) -> None:
    # The walkthrough: log in, then rename and change email and password right away (the
    # email once its link is followed).
    org = await create_org(client, ACME)
    response = await client.put("/org/update", headers=org.auth, json={
        "old_organization_name": ACME, "new_organization_name": "Acme Updated",
        "email": "new@acme.example.com", "password": "newsecure123"})
    assert response.status_code == 200, response.text
    assert await login(client, org.email, "newsecure123")
    assert (await follow_link(client, master, "new@acme.example.com", CHANGE)
            ).status_code == 200
    assert await login(client, "new@acme.example.com", "newsecure123")


@pytest.mark.parametrize("change", [{"password": "stolen-pass-1"},
                                    {"email": "thief@evil.example.com"},
                                    {"email": "thief@evil.example.com",
                                     "password": "stolen-pass-1",
                                     "new_organization_name": "Owned"}])
async def test_old_token_cannot_change_credentials(client: httpx.AsyncClient, master: Any,
                                                   settings: Any, change: dict[str, str]
                                                   ) -> None:
    org = await create_org(client, ACME)
    before = await snapshot(master)
    response = await update(client, old_token(settings, org), **change)
    assert_step_up_required(response, settings)
    assert await snapshot(master) == before  # nothing renamed, no credential, no version
    assert "org_acme_corp" in await master.list_collection_names()
    assert await login(client, org.email, org.password)
    entry = await master["audit_log"].find_one({"action": "organization.update"})
    assert entry["outcome"] == "failure"
    assert entry["reason"] == "insufficient_user_authentication"


async def test_token_without_auth_time_counts_as_old(client: httpx.AsyncClient, master: Any,
                                                    settings: Any) -> None:
    org = await create_org(client, ACME)
    legacy = with_auth_time(settings, org, None)
    assert (await client.get("/admin/me", headers=legacy)).status_code == 200
    before = await snapshot(master)
    assert_step_up_required(await update(client, legacy, password="stolen-pass-1"), settings)
    assert await snapshot(master) == before


async def test_login_within_the_max_age_is_recent_enough(client: httpx.AsyncClient,
                                                         settings: Any) -> None:
    org = await create_org(client, ACME)
    recent = with_auth_time(settings, org, time.time()
                            - settings.CREDENTIAL_CHANGE_MAX_AGE_SECONDS + 60)
    response = await update(client, recent, password="brand-new-pass")
    assert response.status_code == 200, response.text
    assert await login(client, org.email, "brand-new-pass")


async def test_old_token_with_the_current_password_changes_credentials(
        client: httpx.AsyncClient, settings: Any, master: Any) -> None:
    org = await create_org(client, ACME)
    response = await update(client, old_token(settings, org), current_password=org.password,
                            email="new@acme.example.com", password="brand-new-pass")
    assert response.status_code == 200, response.text
    assert (await follow_link(client, master, "new@acme.example.com", CHANGE)
            ).status_code == 200
    assert await login(client, "new@acme.example.com", "brand-new-pass")


async def test_a_wrong_current_password_is_403_and_changes_nothing(
        client: httpx.AsyncClient, master: Any, settings: Any) -> None:
    org = await create_org(client, ACME)
    before = await snapshot(master)
    for headers in (old_token(settings, org), org.auth):  # checked even on a fresh token
        response = await update(client, headers, current_password="not-the-password",
                                password="stolen-pass-1")
        assert response.status_code == 403, response.text
        assert response.json()["error"] == "invalid_current_password"
    assert await snapshot(master) == before
    entry = await master["audit_log"].find_one({"action": "organization.update"})
    assert entry["outcome"] == "denied" and entry["reason"] == "invalid_current_password"


async def test_wrong_current_passwords_count_as_failed_logins(client: httpx.AsyncClient,
                                                              master: Any,
                                                              settings: Any) -> None:
    org = await create_org(client, ACME)
    stolen = old_token(settings, org)
    for _ in range(settings.LOGIN_MAX_FAILURES_PER_EMAIL):
        response = await update(client, stolen, current_password="guess-guess",
                                password="stolen-pass-1")
        assert response.status_code == 403, response.text
    # Guessing through the token hits the same limit as guessing at /admin/login.
    guessed = await update(client, stolen, current_password=org.password,
                           password="stolen-pass-1")
    assert guessed.status_code == 429, guessed.text
    assert int(guessed.headers["Retry-After"]) >= 1
    refused = await client.post("/admin/login", json={"email": org.email,
                                                      "password": org.password})
    assert refused.status_code == 429
    admin = await master["members"].find_one({})
    assert admin["token_version"] == 1


async def test_a_right_current_password_counts_as_a_successful_login(
        client: httpx.AsyncClient, settings: Any) -> None:
    # Its typos are forgiven as a login's are: without that, the failures below would add
    # up past the limit and the last login would be throttled.
    org = await create_org(client, ACME)
    stolen = old_token(settings, org)
    typos = settings.LOGIN_MAX_FAILURES_PER_EMAIL - 1
    for _ in range(typos):
        assert (await update(client, stolen, current_password="typo-typo")).status_code == 403
    ok = await update(client, stolen, current_password=org.password, password="brand-new-pass")
    assert ok.status_code == 200, ok.text
    for _ in range(typos):
        wrong = await client.post("/admin/login", json={"email": org.email,
                                                        "password": "typo-typo"})
        assert wrong.status_code == 401
    assert await login(client, org.email, "brand-new-pass")


async def test_rename_alone_needs_no_recent_login(client: httpx.AsyncClient, master: Any,
                                                  settings: Any) -> None:
    org = await create_org(client, ACME)
    for headers in (old_token(settings, org), with_auth_time(settings, org, None)):
        response = await client.put("/org/update", headers=headers, json={
            "old_organization_name": ACME, "new_organization_name": "ACME Corp"})
        assert response.status_code == 200, response.text
    assert (await master["organizations"].find_one({}))["organization_name"] == "ACME Corp"


@pytest.mark.parametrize("auth_time", ["yesterday", True, None, [1]])
async def test_a_wrongly_typed_auth_time_is_refused(client: httpx.AsyncClient, settings: Any,
                                                    auth_time: Any) -> None:
    org = await create_org(client, ACME)
    claims = {**jwt.decode(org.token, options={"verify_signature": False}),
              "auth_time": auth_time}
    token = jwt.encode(claims, settings.JWT_SECRET_KEY.get_secret_value(), algorithm="HS256")
    response = await client.get("/admin/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


async def test_a_current_password_never_checked_is_no_failure(
        client: httpx.AsyncClient, master: Any, services: Any, settings: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from org_service.security import HashingBusy

    org = await create_org(client, ACME)
    counters = await master["login_failures"].find({}).to_list(None)

    async def overloaded(*_: Any) -> bool:
        raise HashingBusy("Too many password checks are waiting; retry shortly")

    monkeypatch.setattr(services.hasher, "verify", overloaded)
    response = await update(client, old_token(settings, org), current_password=org.password,
                            password="brand-new-pass")
    assert response.status_code == 503, response.text
    assert "Retry-After" in response.headers
    assert [(c["_id"], c["failures"]) for c in
            await master["login_failures"].find({}).to_list(None) if c["failures"]] == [
        (c["_id"], c["failures"]) for c in counters if c["failures"]]
