"""POST /org/create with an Idempotency-Key (IETF httpapi draft): a replay answers the first
response and creates nothing, another body under the same key is a 422, and concurrent
requests with one key never both create."""

from __future__ import annotations

import asyncio
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
        assert await lifecycle_db["admins"].count_documents({}) == 1
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
