"""POST /org/create with an Idempotency-Key (IETF httpapi draft): a replay answers the first
response and creates nothing, another body under the same key is a 422, and concurrent
requests with one key never both create."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.organizations.lifecycle_support import assert_consistent, create, running


async def test_a_replay_returns_the_first_response_and_creates_nothing(
        lifecycle_settings: Any, lifecycle_db: Any) -> None:
    async with running(lifecycle_settings) as app:
        first = await create(app.http, "Acme", **{"Idempotency-Key": '"order-1"'})
        replay = await create(app.http, "Acme", **{"Idempotency-Key": '"order-1"'})

        assert first.status_code == replay.status_code == 201
        assert replay.json() == first.json()
        assert await lifecycle_db["organizations"].count_documents({}) == 1
        assert await lifecycle_db["members"].count_documents({}) == 1
        await assert_consistent(lifecycle_db)


async def test_the_same_key_with_another_body_is_422_and_writes_nothing(
        lifecycle_settings: Any, lifecycle_db: Any) -> None:
    async with running(lifecycle_settings) as app:
        assert (await create(app.http, "Acme", **{"Idempotency-Key": "k"})).status_code == 201

        other = await create(app.http, "Other", **{"Idempotency-Key": "k"})

        assert other.status_code == 422
        assert "Idempotency-Key" in other.json()["detail"]
        assert await lifecycle_db["organizations"].count_documents({}) == 1


async def test_concurrent_requests_with_one_key_create_once(
        lifecycle_settings: Any, lifecycle_db: Any) -> None:
    async with running(lifecycle_settings) as app:
        responses = await asyncio.gather(
            *(create(app.http, "Acme", **{"Idempotency-Key": "same"}) for _ in range(8)))

        created = [r for r in responses if r.status_code == 201]
        assert created
        assert all(r.json() == created[0].json() for r in created)
        assert {r.status_code for r in responses} <= {201, 409}
        assert await lifecycle_db["organizations"].count_documents({}) == 1
        await assert_consistent(lifecycle_db)


async def test_without_a_key_a_repeat_is_a_409(lifecycle_settings: Any) -> None:
    async with running(lifecycle_settings) as app:
        assert (await create(app.http, "Acme")).status_code == 201
        assert (await create(app.http, "Acme")).status_code == 409


async def test_a_failed_create_is_not_replayed_its_retry_runs_again(
        lifecycle_settings: Any, lifecycle_db: Any) -> None:
    async with running(lifecycle_settings) as app:
        assert (await create(app.http, "Taken")).status_code == 201
        clash = await create(app.http, "Taken", "other@x.example.com",
                             **{"Idempotency-Key": "retry-me"})
        assert clash.status_code == 409
        await lifecycle_db["organizations"].delete_many({})
        await lifecycle_db["slug_claims"].delete_many({})
        await lifecycle_db["tenant_collections"].delete_many({})
        await lifecycle_db.drop_collection("org_taken")

        again = await create(app.http, "Taken", "other@x.example.com",
                             **{"Idempotency-Key": "retry-me"})

        assert again.status_code == 201, again.text


async def test_a_malformed_key_is_a_400_naming_the_header(lifecycle_settings: Any) -> None:
    async with running(lifecycle_settings) as app:
        response = await create(app.http, "Acme", **{"Idempotency-Key": "x" * 300})

        assert response.status_code == 400
        assert "Idempotency-Key" in response.json()["detail"]


def _body(name: str, password: str) -> dict[str, str]:
    return {"organization_name": name, "email": "admin@acme.example.com", "password": password}


async def _create_with(app: Any, key: str, password: str, name: str = "Acme") -> Any:
    return await app.http.post("/org/create", json=_body(name, password),
                               headers={"Idempotency-Key": key})


async def test_the_stored_record_holds_nothing_derived_from_the_password(
        lifecycle_settings: Any, lifecycle_db: Any, raw_client: Any) -> None:
    # With the service secret known, a fingerprint over the password would check a guess at
    # HMAC speed; the record must not depend on the password at all (bcrypt guards it).
    records = []
    for password in ("first-password-1", "another-password-2"):
        await raw_client.drop_database(lifecycle_db.name)
        async with running(lifecycle_settings) as app:
            assert (await _create_with(app, "k", password)).status_code == 201
            records.append(await lifecycle_db["idempotency_keys"].find_one({"_id": "k"}))

    first, second = records
    assert first["fingerprint"] == second["fingerprint"]
    for record in records:
        assert set(record) == {"_id", "fingerprint", "state", "organization_id",
                               "lease_until", "created_at", "status", "body"}
        assert "password" not in str(record["body"])


async def test_a_replay_with_another_password_is_422_and_creates_nothing(
        lifecycle_settings: Any, lifecycle_db: Any) -> None:
    async with running(lifecycle_settings) as app:
        first = await _create_with(app, "k", "first-password-1")
        assert first.status_code == 201, first.text

        other = await _create_with(app, "k", "another-password-2")
        same = await _create_with(app, "k", "first-password-1")

        assert other.status_code == 422, other.text
        assert "Idempotency-Key" in other.json()["detail"]
        assert "first-password-1" not in other.text
        assert same.status_code == 201 and same.json() == first.json()
        assert await lifecycle_db["organizations"].count_documents({}) == 1


async def test_adopting_a_dead_requests_key_checks_the_password_too(
        lifecycle_settings: Any, lifecycle_db: Any) -> None:
    # The first request created the organization and died before recording its answer:
    # its key is pending, its lease over. A retry is answered from what it created, but
    # only when it carries the same password.
    async with running(lifecycle_settings) as app:
        first = await _create_with(app, "k", "first-password-1")
        assert first.status_code == 201, first.text
        await lifecycle_db["idempotency_keys"].update_one({"_id": "k"}, {
            "$set": {"state": "pending",
                     "lease_until": datetime.now(UTC) - timedelta(minutes=1)},
            "$unset": {"status": "", "body": ""}})

        wrong = await _create_with(app, "k", "another-password-2")
        right = await _create_with(app, "k", "first-password-1")

        assert wrong.status_code == 422, wrong.text
        assert right.status_code == 201, right.text
        assert right.json() == first.json()
        assert await lifecycle_db["organizations"].count_documents({}) == 1
