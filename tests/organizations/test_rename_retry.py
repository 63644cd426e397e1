"""A retry of a rename that already happened answers 200; nothing else that names another
name as the old one does (so the audit trail never records a rename of someone else's
organization as a success). Runs an app with a short fence so renames settle quickly."""

from __future__ import annotations

from typing import Any

from tests.organizations.lifecycle_support import (
    create,
    org_with_docs,
    rename,
    running,
    settled,
)


async def test_only_the_last_rename_can_be_retried(lifecycle_settings: Any,
                                                   lifecycle_db: Any) -> None:
    async with running(lifecycle_settings) as app:
        _, auth = await org_with_docs(app, lifecycle_db, "Acme", 3)
        assert (await rename(app.http, auth, "Acme", "Beta")).status_code == 200
        await settled(lifecycle_db)
        assert (await rename(app.http, auth, "Beta", "Gamma")).status_code == 200
        await settled(lifecycle_db)

        older = await rename(app.http, auth, "Acme", "Gamma")  # no such rename ever ran
        assert older.status_code == 403, older.text
        last = await rename(app.http, auth, "Beta", "Gamma")
        assert last.status_code == 200, last.text
        assert last.json()["collection_name"] == "org_gamma"
        org = await lifecycle_db["organizations"].find_one({})
        assert (org["slug"], org["previous_slug"]) == ("gamma", "beta")
        assert await lifecycle_db["org_gamma"].count_documents({}) == 3


async def test_a_given_up_name_taken_by_another_organization_is_not_a_retry(
        lifecycle_settings: Any, lifecycle_db: Any) -> None:
    async with running(lifecycle_settings) as app:
        _, auth = await org_with_docs(app, lifecycle_db, "Acme", 1)
        assert (await rename(app.http, auth, "Acme", "Zenith")).status_code == 200
        await settled(lifecycle_db)
        newcomer = await create(app.http, "Acme", email="admin@new-acme.example.com")
        assert newcomer.status_code == 201, newcomer.text
        before = await lifecycle_db["organizations"].find({}).to_list(None)

        response = await rename(app.http, auth, "Acme", "Zenith")

        assert response.status_code == 403, response.text
        assert await lifecycle_db["organizations"].find({}).to_list(None) == before
        entry = await lifecycle_db["audit_log"].find_one(
            {"action": "organization.update", "target": "Acme"}, sort=[("_id", -1)])
        assert (entry["outcome"], entry["reason"]) == ("denied", "forbidden")
