"""The restore window under faults and overlaps: parking, restore and purge each fail at
every step in turn (a real failCommand on the server; parking in test_lifecycle_faults),
or are paused mid-way while another
process takes them over or races them; afterwards the organization is whole, either parked
or restored or purged, never in between."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from bson import ObjectId

from org_service.organizations.errors import LeaseLost, NameTaken
from tests.helpers import HeldHashes, create_org, until
from tests.invitations.support import accept, invite, token_of
from tests.organizations.lifecycle_support import (
    assert_consistent,
    delete,
    failing,
    org_with_docs,
    running,
    settled,
)
from tests.organizations.window_support import assert_parked, cli, due_now

T = TypeVar("T")
DOCS = 20
# Longer than the test lease (0.5 s) plus the fence: the failed process is "dead".
LEASE_OUT = 1.2


async def parked_acme(app: Any, db: Any) -> tuple[str, dict[str, str]]:
    org_id, auth = await org_with_docs(app, db, "Acme", DOCS)
    assert (await delete(app.http, auth, "Acme")).status_code == 200
    await settled(db)
    return org_id, auth


async def restored_or_parked(db: Any, org_id: str) -> bool:
    """Whole either way; True when restored."""
    await settled(db)
    if await db["organizations"].count_documents({"_id": ObjectId(org_id)}):
        await assert_consistent(db, {org_id: DOCS})
        await assert_parked(db, {})
        return True
    await assert_consistent(db, {})
    await assert_parked(db, {org_id: DOCS})
    return False


async def final_records(db: Any, org_id: str) -> list[str]:
    return [e["action"] for e in await db["audit_log"].find(
        {"organization_id": ObjectId(org_id)}).to_list(None)]


@pytest.mark.parametrize("command", ["insert", "findAndModify", "update",
                                     "renameCollection", "delete"])
async def test_restore_failing_at_a_step_is_whole_after_restart_and_retry(
        lifecycle_settings: Any, lifecycle_db: Any, raw_client: Any, command: str) -> None:
    async with running(lifecycle_settings) as first:
        acme, _ = await parked_acme(first, lifecycle_db)
        async with failing(raw_client, command):
            result = await cli(lifecycle_settings, "restore-deleted", acme)
        if result.exit_code != 0:
            assert "did not answer" in result.output, result.output
    await asyncio.sleep(LEASE_OUT)

    async with running(lifecycle_settings):
        if not await restored_or_parked(lifecycle_db, acme):
            retried = await cli(lifecycle_settings, "restore-deleted", acme)
            assert retried.exit_code == 0, retried.output
        assert await restored_or_parked(lifecycle_db, acme)


@pytest.mark.parametrize("command", ["insert", "findAndModify", "update", "drop", "delete"])
async def test_purge_failing_at_a_step_is_finished_after_restart(
        lifecycle_settings: Any, lifecycle_db: Any, raw_client: Any, command: str) -> None:
    async with running(lifecycle_settings) as first:
        acme, _ = await parked_acme(first, lifecycle_db)
        await due_now(lifecycle_db, acme)
        async with failing(raw_client, command):
            result = await cli(lifecycle_settings, "purge")
        if result.exit_code != 0:
            assert "did not answer" in result.output, result.output
    await asyncio.sleep(LEASE_OUT)

    async with running(lifecycle_settings):  # startup recovery, then its sweep
        await assert_parked(lifecycle_db, {})
        await assert_consistent(lifecycle_db, {})
        assert await final_records(lifecycle_db, acme) == ["organization.purge"]


async def paused_at(app: Any, step: str, work: Coroutine[Any, Any, T]
                    ) -> tuple[asyncio.Task[T], asyncio.Event]:
    """Run `work` (a restore or purge on `app`) until it reaches the checkpoint `step`, and
    hold it there until the returned event is set."""
    reached, release = asyncio.Event(), asyncio.Event()

    async def checkpoint(name: str, op: dict[str, Any]) -> None:
        if name == step and op["kind"] in ("restore", "purge") and not reached.is_set():
            reached.set()
            await release.wait()

    app.services.lifecycle.checkpoint = checkpoint
    task = asyncio.create_task(work)
    await asyncio.wait_for(reached.wait(), 10)
    return task, release


async def purge_paused_once_marked(app: Any, db: Any
                                   ) -> tuple[str, asyncio.Task[Any], asyncio.Event]:
    """A parked Acme whose window is over, and the sweep's purge of it held once it has
    marked the organization (purging) and counted what it will purge."""
    acme, _ = await parked_acme(app, db)
    await due_now(db, acme)
    purging, release = await paused_at(app, "counted", app.services.window.purge_due())
    return acme, purging, release


async def restore_paused_at(app: Any, db: Any, step: str
                            ) -> tuple[str, asyncio.Task[Any], asyncio.Event]:
    """A parked Acme, and its restore held at `step`."""
    acme, _ = await parked_acme(app, db)
    restoring, release = await paused_at(app, step,
                                         app.services.window.restore(ObjectId(acme)))
    return acme, restoring, release


async def test_a_restore_whose_process_died_before_its_collection_moved_is_undone(
        lifecycle_settings: Any, lifecycle_db: Any) -> None:
    async with running(lifecycle_settings) as first:
        acme, restoring, release = await restore_paused_at(first, lifecycle_db,
                                                            "claimed")
        await asyncio.sleep(LEASE_OUT)

        async with running(lifecycle_settings):  # its startup recovery takes it over
            assert not await restored_or_parked(lifecycle_db, acme)
            release.set()
            with pytest.raises(LeaseLost):
                await restoring
            assert not await restored_or_parked(lifecycle_db, acme)


async def test_a_purge_whose_process_died_once_marked_is_finished(
        lifecycle_settings: Any, lifecycle_db: Any) -> None:
    async with running(lifecycle_settings) as first:
        acme, purging, release = await purge_paused_once_marked(first, lifecycle_db)
        await asyncio.sleep(LEASE_OUT)

        async with running(lifecycle_settings):
            await assert_parked(lifecycle_db, {})
            release.set()
            assert await purging == []  # the paused holder lost it: it purges nothing
            assert await final_records(lifecycle_db, acme) == ["organization.purge"]


@pytest.fixture
def patient_settings(lifecycle_settings: Any) -> Any:
    # Leases that outlast a paused operation: only the database's arbitration decides.
    return lifecycle_settings.model_copy(update={"LIFECYCLE_LEASE_SECONDS": 30})


async def test_a_create_of_the_name_racing_a_restore_wins_the_claim_first(
        patient_settings: Any, lifecycle_db: Any) -> None:
    async with running(patient_settings) as app:
        acme, restoring, release = await restore_paused_at(app, lifecycle_db,
                                                            "journaled")

        newcomer = await create_org(app.http, "Acme", email="new@acme.example.com")
        release.set()

        with pytest.raises(NameTaken):
            await restoring
        await assert_consistent(lifecycle_db)
        await assert_parked(lifecycle_db, {acme: DOCS})
        got = await app.http.post("/org/get", json={"organization_name": "Acme"})
        assert got.json()["id"] == newcomer.id


async def test_a_restore_racing_a_purge_of_the_same_organization_is_refused(
        patient_settings: Any, lifecycle_db: Any) -> None:
    async with running(patient_settings) as app:
        acme, purging, release = await purge_paused_once_marked(app, lifecycle_db)

        refused = await cli(patient_settings, "restore-deleted", acme)
        release.set()
        [purged] = await purging

        assert refused.exit_code == 1, refused.output
        assert "in progress" in refused.output
        assert str(purged.organization_id) == acme
        await assert_parked(lifecycle_db, {})
        assert await final_records(lifecycle_db, acme) == ["organization.purge"]


async def test_a_purge_racing_a_restore_of_the_same_organization_leaves_it_alone(
        patient_settings: Any, lifecycle_db: Any) -> None:
    async with running(patient_settings) as app:
        acme, restoring, release = await restore_paused_at(app, lifecycle_db, "claimed")
        await due_now(lifecycle_db, acme)  # a purge would take it, were it not restoring

        purged = await cli(patient_settings, "purge")
        release.set()
        restored = await restoring

        assert purged.exit_code == 0 and "0 organization(s) purged" in purged.output
        assert str(restored.organization_id) == acme
        assert await restored_or_parked(lifecycle_db, acme)


@pytest.mark.parametrize("grace_days", [7, 0])
async def test_a_member_added_while_the_organization_is_deleted_is_no_orphan(
        lifecycle_settings: Any, lifecycle_db: Any, grace_days: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = lifecycle_settings.model_copy(update={"DELETION_GRACE_DAYS": grace_days})
    async with running(settings) as app:
        org = await create_org(app.http, "Acme")
        held = HeldHashes(app.services.hasher.hash)
        monkeypatch.setattr(app.services.hasher, "hash", held)
        held.armed = True
        adding = asyncio.create_task(app.http.post("/org/members", headers=org.auth, json={
            "email": "late@acme.example.com", "password": "secure123", "name": "Late"}))
        await until(lambda: held.done == 1)  # past its tenant lookup, before its write

        assert (await delete(app.http, org.auth, "Acme")).status_code == 200
        held.release.set()
        added = await adding

        await assert_consistent(lifecycle_db)  # members belong to live organizations only
        kept = await lifecycle_db["deleted_members"].count_documents(
            {"email": "late@acme.example.com"})
        assert kept == (1 if added.status_code == 201 and grace_days else 0), added.text


async def test_an_invitation_accepted_while_the_organization_is_deleted_makes_nobody(
        lifecycle_settings: Any, lifecycle_db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    async with running(lifecycle_settings) as app:
        org = await create_org(app.http, "Acme")
        created = await invite(app.http, org, "invitee@example.com")
        held = HeldHashes(app.services.hasher.hash)
        monkeypatch.setattr(app.services.hasher, "hash", held)
        held.armed = True
        accepting = asyncio.create_task(accept(app.http, token_of(created["accept_url"])))
        await until(lambda: held.done == 1)  # the organization read, the member not written

        assert (await delete(app.http, org.auth, "Acme")).status_code == 200
        held.release.set()
        answer = await accepting

        assert answer.status_code == 404, answer.text
        await assert_consistent(lifecycle_db)
        for name in ("members", "deleted_members"):
            assert await lifecycle_db[name].count_documents(
                {"email": "invitee@example.com"}) == 0
        invitation = await lifecycle_db["invitations"].find_one({})
        assert invitation["state"] == "revoked"
