"""Public creates are throttled per client address, in MongoDB like failed logins: a flood
from one address cannot queue bcrypt work ahead of everyone's logins and renames."""

from __future__ import annotations

from typing import Any

import bcrypt
import pytest

from tests.helpers import app_with, calls_to, client_for

WINDOW = 3600


def body(n: int) -> dict[str, str]:
    return {"organization_name": f"Flood {n}", "email": f"admin{n}@flood.example.com",
            "password": "secure123"}






async def test_creates_past_the_limit_from_one_address_get_429_and_write_nothing(
        settings: Any, master: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    async with (app_with(settings, CREATE_MAX_PER_ADDRESS=3,
                         CREATE_WINDOW_SECONDS=WINDOW) as app,
                client_for(app, "203.0.113.50") as flooder):
        for n in range(3):
            assert (await flooder.post("/org/create", json=body(n))).status_code == 201
        hashed = calls_to(monkeypatch, bcrypt, "hashpw")
        for n in range(3, 6):
            refused = await flooder.post("/org/create", json=body(n))
            assert refused.status_code == 429, refused.text
            assert refused.json()["error"] == "too_many_requests"
            assert 1 <= int(refused.headers["Retry-After"]) <= WINDOW
        # Refused before the password was hashed, and nothing of it written.
        assert hashed == []
        assert await master["organizations"].count_documents({}) == 3
        assert await master["members"].count_documents(
            {"email": {"$in": [body(n)["email"] for n in range(3, 6)]}}) == 0
        assert not {"org_flood_3", "org_flood_4", "org_flood_5"} & set(
            await master.list_collection_names())
        # Another address has its own allowance.
        async with client_for(app, "198.51.100.9") as portal:
            assert (await portal.post("/org/create", json=body(9))).status_code == 201


async def test_a_conflicting_create_counts_too(settings: Any, master: Any) -> None:
    # A 409 cost a password hash as much as a 201 did.
    async with (app_with(settings, CREATE_MAX_PER_ADDRESS=2) as app,
                client_for(app, "203.0.113.50") as flooder):
        assert (await flooder.post("/org/create", json=body(1))).status_code == 201
        assert (await flooder.post("/org/create", json=body(1))).status_code == 409
        assert (await flooder.post("/org/create", json=body(2))).status_code == 429


async def test_a_throttled_create_is_audited(settings: Any, master: Any) -> None:
    async with (app_with(settings, CREATE_MAX_PER_ADDRESS=1) as app,
                client_for(app, "203.0.113.50") as flooder):
        assert (await flooder.post("/org/create", json=body(1))).status_code == 201
        assert (await flooder.post("/org/create", json=body(2))).status_code == 429
    entry = await master["audit_log"].find_one(
        {"action": "organization.create", "outcome": "failure"})
    assert entry is not None, await master["audit_log"].find().to_list(None)
    assert entry["reason"] == "too_many_requests" and entry["target"] == "Flood 2"
    assert entry["client_address"] == "203.0.113.50"
