"""Each step of create, rename and delete fails in turn (a real failCommand failpoint on
the server, a transient fault the driver does not retry: see lifecycle_support.failing).
Whatever the failing request answered, after a restart of the app (its startup recovery)
and after the client retries, the organizations are whole: all or nothing, every document
in exactly one collection."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.organizations.lifecycle_support import (
    assert_consistent,
    assert_retryable,
    create,
    delete,
    failing,
    org_with_docs,
    rename,
    running,
)
from tests.organizations.window_support import assert_parked

DOCS = 30
# Longer than the test lease (0.5 s) plus the fence: the failed request's process is "dead".
LEASE_OUT = 1.2

RENAME_STEPS = ["insert", "update", "findAndModify", "listCollections", "renameCollection",
                "delete"]
CREATE_STEPS = ["insert", "update", "findAndModify", "create", "createIndexes", "delete"]
# With a restore window (the default) a delete parks the collection (renameCollection) and
# moves the organization and its members (insert, delete); without one it drops.
DELETE_STEPS = ["insert", "findAndModify", "update", "renameCollection", "drop", "delete"]


def _answered_or_retryable(response: Any, ok: int) -> None:
    if response.status_code != ok:
        assert_retryable(response)


@pytest.mark.parametrize("command", RENAME_STEPS)
async def test_rename_failing_at_a_step_is_whole_after_restart_and_retry(
        lifecycle_settings: Any, lifecycle_db: Any, raw_client: Any, command: str) -> None:
    async with running(lifecycle_settings) as first:
        org_id, auth = await org_with_docs(first, lifecycle_db, "Acme", DOCS)
        async with failing(raw_client, command):
            response = await rename(first.http, auth, "Acme", "Zenith")
        _answered_or_retryable(response, 200)
    await asyncio.sleep(LEASE_OUT)

    async with running(lifecycle_settings) as restarted:
        await assert_consistent(lifecycle_db, {org_id: DOCS})
        org = await lifecycle_db["organizations"].find_one({})
        assert org["collection_name"] in ("org_acme", "org_zenith")

        retried = await rename(restarted.http, auth, "Acme", "Zenith")
        assert retried.status_code == 200, retried.text
        assert retried.json()["collection_name"] == "org_zenith"
        await assert_consistent(lifecycle_db, {org_id: DOCS})


@pytest.mark.parametrize("command", ["findAndModify", "renameCollection"])
async def test_rename_retried_after_a_fault_completes_without_restart(
        lifecycle_settings: Any, lifecycle_db: Any, raw_client: Any, command: str) -> None:
    async with running(lifecycle_settings) as app:
        org_id, auth = await org_with_docs(app, lifecycle_db, "Acme", DOCS)
        async with failing(raw_client, command):
            assert_retryable(await rename(app.http, auth, "Acme", "Zenith"))

        retried = await rename(app.http, auth, "Acme", "Zenith")

        assert retried.status_code == 200, retried.text
        assert retried.json()["collection_name"] == "org_zenith"
        await assert_consistent(lifecycle_db, {org_id: DOCS})


@pytest.mark.parametrize("command", CREATE_STEPS)
async def test_create_failing_at_a_step_is_all_or_nothing_after_restart_and_retry(
        lifecycle_settings: Any, lifecycle_db: Any, raw_client: Any, command: str) -> None:
    key = {"Idempotency-Key": f"create-{command}"}
    async with running(lifecycle_settings) as first:
        async with failing(raw_client, command):
            response = await create(first.http, "Acme", **key)
        _answered_or_retryable(response, 201)
    await asyncio.sleep(LEASE_OUT)

    async with running(lifecycle_settings) as restarted:
        await assert_consistent(lifecycle_db)
        assert await lifecycle_db["organizations"].count_documents({}) in (0, 1)

        retried = await create(restarted.http, "Acme", **key)
        assert retried.status_code == 201, retried.text
        if response.status_code == 201:
            assert retried.json() == response.json()
        await assert_consistent(lifecycle_db)
        assert await lifecycle_db["organizations"].count_documents({}) == 1
        assert await lifecycle_db.list_collection_names(filter={"name": "org_acme"})


@pytest.mark.parametrize("command", DELETE_STEPS)
async def test_delete_failing_at_a_step_is_finished_by_restart_and_retry(
        lifecycle_settings: Any, lifecycle_db: Any, raw_client: Any, command: str) -> None:
    async with running(lifecycle_settings) as first:
        acme, auth = await org_with_docs(first, lifecycle_db, "Acme", DOCS)
        other, _ = await org_with_docs(first, lifecycle_db, "Other", DOCS)
        async with failing(raw_client, command):
            response = await delete(first.http, auth, "Acme")
        _answered_or_retryable(response, 200)
    await asyncio.sleep(LEASE_OUT)

    async with running(lifecycle_settings) as restarted:
        acme_left = await lifecycle_db["organizations"].count_documents({"slug": "acme"})
        # Either the delete never got journaled (untouched) or recovery finished it.
        await assert_consistent(lifecycle_db, {other: DOCS, acme: DOCS} if acme_left
                                else {other: DOCS})

        retried = await delete(restarted.http, auth, "Acme")
        assert retried.status_code == 200, retried.text
        assert retried.json() == {"deleted": True, "id": acme, "organization_name": "Acme",
                                  "collection_name": "org_acme"}
        await assert_consistent(lifecycle_db, {other: DOCS})
        await assert_parked(lifecycle_db, {acme: DOCS})  # whole in its restore window


@pytest.mark.parametrize(("grace_days", "command"), [(7, "renameCollection"), (0, "drop")])
async def test_delete_retried_after_a_fault_completes_without_restart(
        lifecycle_settings: Any, lifecycle_db: Any, raw_client: Any, grace_days: int,
        command: str) -> None:
    settings = lifecycle_settings.model_copy(update={"DELETION_GRACE_DAYS": grace_days})
    async with running(settings) as app:
        _, auth = await org_with_docs(app, lifecycle_db, "Acme", DOCS)
        async with failing(raw_client, command):
            assert_retryable(await delete(app.http, auth, "Acme"))
        assert await lifecycle_db["organizations"].count_documents({}) == 1  # invisible, kept

        retried = await delete(app.http, auth, "Acme")

        assert retried.status_code == 200, retried.text
        await assert_consistent(lifecycle_db, {})


async def test_driver_retries_a_single_host_unreachable_so_rename_just_succeeds(
        lifecycle_settings: Any, lifecycle_db: Any, raw_client: Any) -> None:
    async with running(lifecycle_settings) as app:
        org_id, auth = await org_with_docs(app, lifecycle_db, "Acme", DOCS)
        async with failing(raw_client, "findAndModify", code=6, times=1):
            response = await rename(app.http, auth, "Acme", "Zenith")
        assert response.status_code == 200, response.text
        await assert_consistent(lifecycle_db, {org_id: DOCS})
