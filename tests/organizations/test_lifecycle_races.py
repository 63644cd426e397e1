"""Concurrent creates, renames and deletes: unique claims and the one-operation-per-
organization journal decide every race, and tenant requests during a rename either wait
(503 + Retry-After) or land in the final collection."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from fastapi import APIRouter

from org_service.deps import CurrentTenant, ServicesDep
from tests.organizations.lifecycle_support import (
    assert_consistent,
    assert_retryable,
    create,
    delete,
    failing,
    org_with_docs,
    rename,
    running,
    settled,
)

DOCS = 40


async def test_two_concurrent_renames_one_wins_the_other_gets_409(
        lifecycle_settings: Any, lifecycle_db: Any) -> None:
    async with running(lifecycle_settings) as app:
        org_id, auth = await org_with_docs(app, lifecycle_db, "Acme", DOCS)

        first, second = await asyncio.gather(rename(app.http, auth, "Acme", "North"),
                                             rename(app.http, auth, "Acme", "South"))

        assert sorted([first.status_code, second.status_code]) == [200, 409]
        loser = first if first.status_code == 409 else second
        assert loser.json()["error"] == "conflict"
        await assert_consistent(lifecycle_db, {org_id: DOCS})


async def test_rename_to_a_name_another_organization_holds_gets_409_and_moves_nothing(
        lifecycle_settings: Any, lifecycle_db: Any) -> None:
    async with running(lifecycle_settings) as app:
        acme, auth = await org_with_docs(app, lifecycle_db, "Acme", DOCS)
        other, _ = await org_with_docs(app, lifecycle_db, "Other Co", 3)

        response = await rename(app.http, auth, "Acme", "other-co")

        assert response.status_code == 409, response.text
        assert (await lifecycle_db["organizations"].find_one({"_id": ObjectId(acme)}))[
            "collection_name"] == "org_acme"
        await assert_consistent(lifecycle_db, {acme: DOCS, other: 3})


async def test_create_racing_a_rename_to_the_same_name_one_of_them_gets_it(
        lifecycle_settings: Any, lifecycle_db: Any) -> None:
    async with running(lifecycle_settings) as app:
        acme, auth = await org_with_docs(app, lifecycle_db, "Acme", DOCS)

        renamed, created = await asyncio.gather(rename(app.http, auth, "Acme", "Zenith"),
                                                create(app.http, "Zenith"))

        assert sorted([renamed.status_code, created.status_code]) in ([200, 409], [201, 409])
        expected = {acme: DOCS}
        if created.status_code == 201:
            expected[created.json()["id"]] = 0
        await assert_consistent(lifecycle_db, expected)


async def test_twenty_identical_creates_give_one_201_and_one_collection(
        lifecycle_settings: Any, lifecycle_db: Any) -> None:
    # A lease long enough that a loaded machine cannot let a loser take the winner's
    # create over as abandoned (what the 0.5 s lease of these tests is for elsewhere).
    settings = lifecycle_settings.model_copy(update={"LIFECYCLE_LEASE_SECONDS": 30})
    async with running(settings) as app:
        responses = await asyncio.gather(*(create(app.http, "Acme") for _ in range(20)))

        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201] + [409] * 19
        await assert_consistent(lifecycle_db)
        assert await lifecycle_db.list_collection_names(filter={"name": {"$regex": "^org_"}}) \
            == ["org_acme"]


async def test_a_name_freed_by_delete_or_rename_can_be_taken_at_once(
        lifecycle_settings: Any, lifecycle_db: Any) -> None:
    async with running(lifecycle_settings) as app:
        _, acme_auth = await org_with_docs(app, lifecycle_db, "Acme", DOCS)
        beta, beta_auth = await org_with_docs(app, lifecycle_db, "Beta", 5)
        assert (await delete(app.http, acme_auth, "Acme")).status_code == 200
        assert (await rename(app.http, beta_auth, "Beta", "Gamma")).status_code == 200

        # Both slugs are still settling; the new owners wait that out instead of a 409.
        acme_again = await create(app.http, "Acme")
        beta_again = await create(app.http, "Beta", "second@beta.example.com")

        assert acme_again.status_code == 201, acme_again.text
        assert beta_again.status_code == 201, beta_again.text
        await assert_consistent(lifecycle_db, {beta: 5, acme_again.json()["id"]: 0,
                                               beta_again.json()["id"]: 0})


async def test_a_slug_let_go_between_the_refused_claim_and_the_holder_read_is_taken(
        lifecycle_settings: Any, lifecycle_db: Any) -> None:
    # The create's claim is refused while the rename still holds "beta"; the rename's
    # settling then lets go before the create reads who holds it. Seen as "nobody", the
    # slug is free: the create claims it instead of answering 409 (a CI run once did).
    async with running(lifecycle_settings) as app:
        beta, auth = await org_with_docs(app, lifecycle_db, "Beta", 5)
        claims = app.services.lifecycle.claims
        original_claim, original_release = claims.claim, claims.release
        beta_let_go = asyncio.Event()
        refused = 0

        async def release(slug: str, organization_id: Any) -> None:
            await original_release(slug, organization_id)
            if slug == "beta":
                beta_let_go.set()

        async def claim_then_let_the_rename_settle(slug: str, organization_id: Any) -> bool:
            nonlocal refused
            got = await original_claim(slug, organization_id)
            if slug == "beta" and not got and not refused:
                refused += 1
                await asyncio.wait_for(beta_let_go.wait(), 15)
            return got

        claims.release = release
        claims.claim = claim_then_let_the_rename_settle
        assert (await rename(app.http, auth, "Beta", "Gamma")).status_code == 200
        beta_again = await create(app.http, "Beta", "second@beta.example.com")

        assert refused == 1
        assert beta_again.status_code == 201, beta_again.text
        await assert_consistent(lifecycle_db, {beta: 5, beta_again.json()["id"]: 0})


async def test_tenant_requests_during_a_rename_wait_with_503_then_see_the_new_name(
        lifecycle_settings: Any, lifecycle_db: Any, raw_client: Any) -> None:
    async with running(lifecycle_settings) as app:
        org_id, auth = await org_with_docs(app, lifecycle_db, "Acme", DOCS)
        async with failing(raw_client, "renameCollection", code=None, block_ms=2500):
            renaming = asyncio.create_task(rename(app.http, auth, "Acme", "Zenith"))
            seen = []
            while not renaming.done():
                seen.append(await app.http.get("/admin/me", headers=auth))
                seen.append(await app.http.post("/admin/login", json={
                    "email": "admin@acme.example.com", "password": "secure123"}))
                await asyncio.sleep(0.05)
        assert (await renaming).status_code == 200

        busy = [r for r in seen if r.status_code == 503]
        assert {r.request.url.path for r in busy} == {"/admin/me", "/admin/login"}, [
            (r.request.url.path, r.status_code) for r in seen]
        for response in busy:
            assert_retryable(response)
        assert {r.status_code for r in seen} <= {200, 503}
        after = await app.http.get("/admin/me", headers=auth)
        assert after.json()["organization"]["collection_name"] == "org_zenith"
        await assert_consistent(lifecycle_db, {org_id: DOCS})


async def test_a_late_write_to_the_old_collection_is_folded_into_the_new_one(
        lifecycle_settings: Any, lifecycle_db: Any) -> None:
    # A request that resolved "org_acme" before the rename and writes after it re-creates
    # org_acme (MongoDB creates collections on insert). Settling folds it back.
    slow_fence = lifecycle_settings.model_copy(update={"TENANT_REQUEST_TIMEOUT_MS": 3000})
    async with running(slow_fence) as app:
        org_id, auth = await org_with_docs(app, lifecycle_db, "Acme", DOCS)
        assert (await rename(app.http, auth, "Acme", "Zenith")).status_code == 200

        await lifecycle_db["org_acme"].insert_one({"kind": "note", "tenant": org_id, "late": 1})
        assert await lifecycle_db["lifecycle_ops"].count_documents({}) == 1  # not settled yet

        await settled(lifecycle_db)
        await assert_consistent(lifecycle_db, {org_id: DOCS + 1})
        assert await lifecycle_db["org_zenith"].count_documents({"late": 1}) == 1


async def test_a_tenant_request_cannot_outlive_its_deadline(
        lifecycle_settings: Any, lifecycle_db: Any, raw_client: Any) -> None:
    # The bound a rename relies on: the tenant context's reads and every write through the
    # records repository (the one way to a tenant collection) end by the deadline (200 ms
    # here) even when the database stalls for 1.5 s.
    probe = APIRouter()

    @probe.post("/probe/write")
    async def write(tenant: CurrentTenant, services: ServicesDep) -> dict[str, str]:
        await services.records.repository.for_tenant(tenant).insert({"kind": "probe"})
        return {"written": tenant.collection_name}

    async with running(lifecycle_settings, probe) as app:
        _, auth = await org_with_docs(app, lifecycle_db, "Acme", 0)
        assert (await app.http.post("/probe/write", headers=auth)).status_code == 200
        loop = asyncio.get_running_loop()
        for stalled in ("aggregate", "insert"):  # the tenant lookup, the write
            async with failing(raw_client, stalled, code=None, block_ms=1500):
                started = loop.time()
                response = await app.http.post("/probe/write", headers=auth)
                elapsed = loop.time() - started
            # The server still runs the held command: wait it out, so it cannot land in
            # the next test's database (which has the same name).
            await asyncio.sleep(max(0.0, 1.6 - elapsed))

            assert_retryable(response)
            assert elapsed < 1.2, stalled


async def test_the_write_deadline_does_not_cut_long_reads(
        lifecycle_settings: Any, lifecycle_db: Any) -> None:
    # Only writes must end by the deadline (200 ms here); an export of a large tenant
    # legitimately streams for longer and must arrive whole.
    async with running(lifecycle_settings) as app:
        # Its own name: a blocked write of an earlier test may still land in "org_acme".
        _, auth = await org_with_docs(app, lifecycle_db, "Exporter", 0)
        now = datetime.now(UTC)
        await lifecycle_db["org_exporter"].insert_many([
            {"kind": "note", "data": {"i": i, "pad": "x" * 400}, "version": 1,
             "created_at": now, "updated_at": now} for i in range(6000)])
        started = asyncio.get_running_loop().time()
        response = await app.http.get("/org/export", headers=auth)
        elapsed = asyncio.get_running_loop().time() - started
        assert response.status_code == 200
        lines = response.text.strip().split("\n")
        assert json.loads(lines[-1]) == {"type": "end", "records": 6000}
        assert elapsed > 0.2  # the stream did outlast the write deadline
