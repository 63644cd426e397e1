"""Fencing: an operation acts only while it holds its journal entry (its token) and the
collection it acts on (tenant_collections). A holder that was taken over does nothing,
and per-organization limits are held by the database, not by one process."""

from __future__ import annotations

import asyncio
from typing import Any

from bson import ObjectId

from tests.organizations.lifecycle_support import (
    assert_consistent,
    create,
    failing,
    fill,
    org_with_docs,
    rename,
    running,
    settled,
)

DOCS = 12


async def test_a_settler_that_lost_its_lease_does_not_touch_the_next_owners_collection(
        lifecycle_settings: Any, lifecycle_db: Any) -> None:
    # The rename's settling is paused past its lease; another instance takes the
    # operation over, settles it and frees "acme"; a new Acme writes to its own org_acme.
    # The paused settler then wakes up and must fold nothing into org_zenith.
    paused, release = asyncio.Event(), asyncio.Event()

    async def pause_settling(step: str, op: dict[str, Any]) -> None:
        if step == "settling" and not release.is_set():
            paused.set()
            await release.wait()

    async with running(lifecycle_settings) as first:
        first.services.lifecycle.checkpoint = pause_settling
        renamed, auth = await org_with_docs(first, lifecycle_db, "Acme", DOCS)
        assert (await rename(first.http, auth, "Acme", "Zenith")).status_code == 200
        await asyncio.wait_for(paused.wait(), 10)
        await asyncio.sleep(1.0)  # past the settling lease (fence + 0.5 s)

        async with running(lifecycle_settings) as second:  # its startup recovery
            await settled(lifecycle_db)
            newcomer = await create(second.http, "Acme", "second@acme.example.com")
            assert newcomer.status_code == 201, newcomer.text
            await fill(lifecycle_db, newcomer.json()["id"], "org_acme", 3)

            release.set()
            await asyncio.sleep(0.5)  # the old settler runs into its lost lease

            await assert_consistent(lifecycle_db, {renamed: DOCS, newcomer.json()["id"]: 3})


async def test_the_index_cap_holds_across_processes(
        lifecycle_settings: Any, lifecycle_db: Any, raw_client: Any) -> None:
    # Two API processes, one slot left under the cap, both declare an index at once while
    # the build is slow: one is accepted, the other refused, never both.
    capped = lifecycle_settings.model_copy(update={"MAX_INDEXES_PER_ORG": 1})
    async with running(capped) as one, running(capped) as two:
        org_id, auth = await org_with_docs(one, lifecycle_db, "Acme", 0)
        bodies = [{"name": name, "kind": "note", "fields": [{"path": name}]}
                  for name in ("first", "second")]
        async with failing(raw_client, "createIndexes", code=None, block_ms=800):
            answers = await asyncio.gather(
                one.http.post("/org/indexes", headers=auth, json=bodies[0]),
                two.http.post("/org/indexes", headers=auth, json=bodies[1]))
            await asyncio.sleep(0.9)  # the accepted build ends on the server

        statuses = sorted(a.status_code for a in answers)
        assert statuses in ([201, 409], [202, 409]), [a.text for a in answers]
        await settled(lifecycle_db)
        indexes = [ix async for ix in await lifecycle_db["org_acme"].list_indexes()
                   if ix["name"].startswith("rx_")]
        assert len(indexes) == 1, indexes
        await assert_consistent(lifecycle_db, {org_id: 0})


async def test_a_rename_refused_as_stale_changes_no_name(
        lifecycle_settings: Any, lifecycle_db: Any) -> None:
    # The request named "Acme", but by the time it holds the journal slot the
    # organization is "North": a changed spelling of the same slug must not be written.
    async with running(lifecycle_settings) as app:
        org_id, auth = await org_with_docs(app, lifecycle_db, "Acme", 2)
        started, release = asyncio.Event(), asyncio.Event()
        original = app.services.lifecycle._begin

        async def slow_begin(*args: Any, **kwargs: Any) -> Any:
            started.set()
            await release.wait()
            return await original(*args, **kwargs)

        app.services.lifecycle._begin = slow_begin
        stale = asyncio.create_task(rename(app.http, auth, "Acme", "Nadir"))
        await asyncio.wait_for(started.wait(), 10)
        app.services.lifecycle._begin = original
        assert (await rename(app.http, auth, "Acme", "North")).status_code == 200
        await settled(lifecycle_db)
        release.set()

        response = await stale
        assert response.status_code == 409, response.text
        assert "renamed or deleted" in response.json()["detail"]
        org = await lifecycle_db["organizations"].find_one({"_id": ObjectId(org_id)})
        assert (org["organization_name"], org["collection_name"]) == ("North", "org_north")
        await assert_consistent(lifecycle_db, {org_id: 2})


async def test_a_rename_whose_collection_is_missing_stops_and_creates_nothing(
        lifecycle_settings: Any, lifecycle_db: Any) -> None:
    # Someone dropped org_acme behind the service's back: the rename must not paper over
    # it with an empty org_zenith (the records would silently be gone for good).
    async with running(lifecycle_settings) as app:
        org_id, auth = await org_with_docs(app, lifecycle_db, "Acme", 3)
        await lifecycle_db.drop_collection("org_acme")

        response = await rename(app.http, auth, "Acme", "Zenith")

        assert response.status_code == 409, response.text
        assert "not where it should be" in response.json()["detail"]
        await settled(lifecycle_db)
        assert await lifecycle_db.list_collection_names(
            filter={"name": {"$regex": "^org_"}}) == []
        org = await lifecycle_db["organizations"].find_one({"_id": ObjectId(org_id)})
        assert (org["state"], org["slug"]) == ("active", "acme")
        claims = [c["_id"] for c in await lifecycle_db["slug_claims"].find({}).to_list(None)]
        assert claims == ["acme"]
        owners = await lifecycle_db["tenant_collections"].find({}).to_list(None)
        assert [(o["_id"], o["op_id"]) for o in owners] == [("org_acme", None)]


async def test_startup_adopts_organizations_from_before_claims_and_owners(
        lifecycle_settings: Any, lifecycle_db: Any) -> None:
    async with running(lifecycle_settings) as app:
        legacy, _ = await org_with_docs(app, lifecycle_db, "Legacy", 2)
        current, _ = await org_with_docs(app, lifecycle_db, "Current", 1)
    # As an organization created before slug claims and collection owners existed.
    await lifecycle_db["slug_claims"].delete_one({"_id": "legacy"})
    await lifecycle_db["tenant_collections"].delete_one({"_id": "org_legacy"})

    async with running(lifecycle_settings):  # its startup adopts what is missing
        await assert_consistent(lifecycle_db, {legacy: 2, current: 1})
