"""DELETE /org/delete is idempotent for its caller: repeating it with the same token (whose
admin the first delete removed) answers the same 200; anyone else still gets 401."""

from __future__ import annotations

from typing import Any

from tests.organizations.lifecycle_support import (
    assert_consistent,
    delete,
    org_with_docs,
    running,
)


async def test_a_repeated_delete_answers_the_same_200(
        lifecycle_settings: Any, lifecycle_db: Any) -> None:
    async with running(lifecycle_settings) as app:
        _, auth = await org_with_docs(app, lifecycle_db, "Acme", 10)

        first = await delete(app.http, auth, "Acme")
        again = await delete(app.http, auth, "Acme")

        assert first.status_code == again.status_code == 200
        assert again.json() == first.json()
        await assert_consistent(lifecycle_db, {})


async def test_a_repeated_delete_naming_another_organization_is_403(
        lifecycle_settings: Any, lifecycle_db: Any) -> None:
    async with running(lifecycle_settings) as app:
        _, auth = await org_with_docs(app, lifecycle_db, "Acme", 0)
        assert (await delete(app.http, auth, "Acme")).status_code == 200

        assert (await delete(app.http, auth, "Other")).status_code == 403


async def test_a_deleted_organizations_token_reaches_nothing_else(
        lifecycle_settings: Any, lifecycle_db: Any) -> None:
    async with running(lifecycle_settings) as app:
        _, auth = await org_with_docs(app, lifecycle_db, "Acme", 0)
        assert (await delete(app.http, auth, "Acme")).status_code == 200

        assert (await app.http.get("/admin/me", headers=auth)).status_code == 401
        assert (await app.http.put("/org/update", headers=auth, json={
            "old_organization_name": "Acme", "new_organization_name": "Bravo"})).status_code == 401
