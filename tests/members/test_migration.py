"""The admins of the first version become members: copied at startup, idempotently, and
adopted on the spot by a login or a token meanwhile, so nobody is locked out while it runs."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers import DEFAULT_PASSWORD, create_org, login
from tests.members.support import member_login

FIRST_VERSION_FIELDS = ("_id", "email", "email_key", "password_hash", "organization_id",
                        "token_version", "created_at", "updated_at")


async def as_first_version(master: Any, email: str) -> dict[str, Any]:
    """Turn a member back into an admin of the first version (`admins`, role org_admin)."""
    member = await master["members"].find_one({"email_key": email})
    await master["members"].delete_one({"_id": member["_id"]})
    admin = {field: member[field] for field in FIRST_VERSION_FIELDS}
    admin["role"] = "org_admin"
    await master["admins"].insert_one(admin)
    return admin


@pytest.fixture
def unmigrated(services: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(services.member_repository, "migrated", False)
    return services.member_repository


async def test_a_first_version_admin_logs_in_and_keeps_their_token_before_the_migration(
        client: httpx.AsyncClient, master: Any, unmigrated: Any) -> None:
    org = await create_org(client, "Acme")
    admin = await as_first_version(master, org.email)

    still = await client.get("/admin/me", headers=org.auth)  # a token from before
    assert still.status_code == 200, still.text
    assert still.json()["role"] == "owner"
    await master["members"].delete_one({"_id": admin["_id"]})  # not adopted yet, again
    token = await login(client, org.email, DEFAULT_PASSWORD)

    assert token
    adopted = await master["members"].find_one({"_id": admin["_id"]})
    assert (adopted["role"], adopted["state"]) == ("owner", "active")
    assert adopted["password_hash"] == admin["password_hash"]


async def test_the_startup_migration_copies_every_admin_once_creator_first(
        client: httpx.AsyncClient, master: Any, unmigrated: Any) -> None:
    acme = await create_org(client, "Acme")
    globex = await create_org(client, "Globex")
    first = await as_first_version(master, acme.email)
    await as_first_version(master, globex.email)
    # A second admin of Acme, added after its creator.
    second = {**first, "_id": None, "email": "second@acme.example.com",
              "email_key": "second@acme.example.com"}
    second.pop("_id")
    await master["admins"].insert_one(second)

    assert await unmigrated.migrate_admins() == 3
    assert await unmigrated.migrate_admins() == 0  # idempotent: the marker says done
    await master["migrations"].delete_many({})
    unmigrated.migrated = False
    assert await unmigrated.migrate_admins() == 0  # and so is the copy itself

    roles = {m["email"]: m["role"] for m in await master["members"].find().to_list(None)}
    assert roles == {acme.email: "owner", "second@acme.example.com": "admin",
                     globex.email: "owner"}
    assert unmigrated.migrated
    for email in (acme.email, "second@acme.example.com"):
        assert (await member_login(client, email)).status_code == 200


async def test_after_the_migration_a_first_version_admin_is_no_longer_looked_up(
        client: httpx.AsyncClient, master: Any, services: Any) -> None:
    # Once every admin is a member, `admins` is never read again: a document left there
    # (or put there later) gives no access.
    org = await create_org(client, "Acme")
    await as_first_version(master, org.email)
    assert services.member_repository.migrated

    assert (await client.get("/admin/me", headers=org.auth)).status_code == 401
    assert (await member_login(client, org.email)).status_code == 401
