"""A stolen, forged, expired or outdated token is worth nothing: always 401 + Bearer."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from bson import ObjectId

from org_service.security import LEEWAY_SECONDS
from tests.helpers import Org, create_org, login
from tests.verification.support import CHANGE, follow_link

GOOD_CLAIMS = ("sub", "org", "sid", "role", "ver", "iat", "exp", "jti")


def claims_of(org: Org) -> dict[str, Any]:
    return jwt.decode(org.token, options={"verify_signature": False})


def forge(settings: Any, payload: dict[str, Any], *, key: str | None = None,
          algorithm: str = "HS256") -> str:
    return jwt.encode(payload, key or settings.JWT_SECRET_KEY.get_secret_value(),
                      algorithm=algorithm)


def unsigned(payload: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}."


async def me(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/admin/me", headers={"Authorization": f"Bearer {token}"})


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"] == "unauthorized"


async def test_me_returns_the_admin_and_their_organization(client: httpx.AsyncClient) -> None:
    org = await create_org(client, "Acme")
    response = await me(client, org.token)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"admin_id", "email", "role", "organization"}
    assert body["email"] == org.email and body["role"] == "owner"
    assert body["organization"]["id"] == org.id
    assert body["organization"]["collection_name"] == "org_acme"
    assert "password" not in response.text and "hash" not in response.text


async def test_issued_token_carries_every_claim(client: httpx.AsyncClient) -> None:
    org = await create_org(client, "Acme")
    header = jwt.get_unverified_header(org.token)
    assert header["alg"] == "HS256"
    claims = claims_of(org)
    assert set(GOOD_CLAIMS) <= set(claims)
    assert claims["org"] == org.id and claims["ver"] == 1


@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer not-a-jwt", "Bearer a.b.c",
    "Bearer " + "x" * 5000, "Token abc.def.ghi",
])
async def test_missing_or_malformed_token_is_refused(client: httpx.AsyncClient,
                                                     authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    assert_refused(await client.get("/admin/me", headers=headers))


async def test_unsigned_alg_none_token_is_refused(client: httpx.AsyncClient) -> None:
    org = await create_org(client, "Acme")
    assert_refused(await me(client, unsigned(claims_of(org))))


async def test_token_signed_with_another_key_is_refused(client: httpx.AsyncClient,
                                                        settings: Any) -> None:
    org = await create_org(client, "Acme")
    assert_refused(await me(client, forge(settings, claims_of(org), key="k" * 48)))


async def test_token_with_another_hmac_algorithm_is_refused(client: httpx.AsyncClient,
                                                           settings: Any) -> None:
    # Same secret, but only HS256 is accepted on decode.
    org = await create_org(client, "Acme")
    assert_refused(await me(client, forge(settings, claims_of(org), algorithm="HS512")))


async def test_tampered_payload_is_refused(client: httpx.AsyncClient) -> None:
    org = await create_org(client, "Acme")
    other = await create_org(client, "Other")
    header, _, signature = org.token.split(".")
    _, payload, _ = other.token.split(".")
    assert_refused(await me(client, f"{header}.{payload}.{signature}"))


async def test_expired_token_is_refused_beyond_the_leeway(client: httpx.AsyncClient,
                                                          settings: Any) -> None:
    assert LEEWAY_SECONDS <= 30
    org = await create_org(client, "Acme")
    now = int(time.time())
    expired = {**claims_of(org), "iat": now - 3600, "exp": now - LEEWAY_SECONDS - 2}
    assert_refused(await me(client, forge(settings, expired)))
    within_leeway = {**expired, "exp": now - 1}
    assert (await me(client, forge(settings, within_leeway))).status_code == 200


async def test_token_issued_in_the_future_is_refused(client: httpx.AsyncClient,
                                                     settings: Any) -> None:
    org = await create_org(client, "Acme")
    now = int(time.time())
    future = {**claims_of(org), "iat": now + 3600, "exp": now + 7200}
    assert_refused(await me(client, forge(settings, future)))


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "org", "ver", "sid"])
async def test_token_missing_a_required_claim_is_refused(client: httpx.AsyncClient,
                                                         settings: Any, claim: str) -> None:
    org = await create_org(client, "Acme")
    payload = claims_of(org)
    del payload[claim]
    assert_refused(await me(client, forge(settings, payload)))


@pytest.mark.parametrize(("claim", "value"), [
    ("ver", "1"), ("ver", True), ("ver", 1.0), ("org", 123), ("exp", "tomorrow"),
    ("exp", 10**20), ("iat", "now"), ("sub", "not-an-object-id"),
    ("sub", "64b000000000000000000001"), ("org", "64b000000000000000000002"), ("ver", 2),
    ("sid", 7), ("sid", "not-an-object-id"),
])
async def test_token_with_a_wrong_claim_is_refused(client: httpx.AsyncClient, settings: Any,
                                                   claim: str, value: Any) -> None:
    org = await create_org(client, "Acme")
    assert_refused(await me(client, forge(settings, {**claims_of(org), claim: value})))


async def test_password_change_revokes_earlier_tokens(client: httpx.AsyncClient) -> None:
    org = await create_org(client, "Acme")
    changed = await client.put("/org/update", headers=org.auth, json={
        "old_organization_name": "Acme", "new_organization_name": "Acme",
        "password": "another-password"})
    assert changed.status_code == 200, changed.text
    assert_refused(await me(client, org.token))
    fresh = await login(client, org.email, "another-password")
    assert (await me(client, fresh)).status_code == 200


async def test_email_change_revokes_earlier_tokens_once_confirmed(
        client: httpx.AsyncClient, master: Any) -> None:
    org = await create_org(client, "Acme")
    changed = await client.put("/org/update", headers=org.auth, json={
        "old_organization_name": "Acme", "new_organization_name": "Acme",
        "email": "new@acme.example.com"})
    assert changed.status_code == 200, changed.text
    assert (await me(client, org.token)).status_code == 200  # asked for, not made yet
    assert (await follow_link(client, master, "new@acme.example.com", CHANGE)
            ).status_code == 200
    assert_refused(await me(client, org.token))


async def test_rename_keeps_tokens_valid(client: httpx.AsyncClient) -> None:
    org = await create_org(client, "Acme")
    renamed = await client.put("/org/update", headers=org.auth, json={
        "old_organization_name": "Acme", "new_organization_name": "Acme Renamed"})
    assert renamed.status_code == 200, renamed.text
    response = await me(client, org.token)
    assert response.status_code == 200
    assert response.json()["organization"]["organization_name"] == "Acme Renamed"


async def test_removed_admin_token_is_refused(client: httpx.AsyncClient, master: Any) -> None:
    org = await create_org(client, "Acme")
    await master["members"].delete_one({"email": org.email})
    assert_refused(await me(client, org.token))


async def test_deleted_organization_token_is_refused(client: httpx.AsyncClient) -> None:
    org = await create_org(client, "Acme")
    deleted = await client.request("DELETE", "/org/delete", headers=org.auth,
                                   json={"organization_name": "Acme"})
    assert deleted.status_code == 200, deleted.text
    assert_refused(await me(client, org.token))


async def test_organization_being_deleted_refuses_its_tokens(client: httpx.AsyncClient,
                                                            master: Any) -> None:
    org = await create_org(client, "Acme")
    await master["organizations"].update_one({"_id": ObjectId(org.id)},
                                             {"$set": {"state": "deleting"}})
    assert_refused(await me(client, org.token))
