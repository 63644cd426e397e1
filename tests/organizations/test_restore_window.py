"""Deletion with a restore window (DELETION_GRACE_DAYS): the delete keeps the seed's
contract while the organization waits, parked, for an operator's `org-service
restore-deleted`, or for the purge once the window is over. The CLI runs through its real
entry point against the test's own database."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId

from tests.helpers import create_org
from tests.organizations.lifecycle_support import (
    assert_consistent,
    delete,
    running,
    settled,
)
from tests.organizations.window_support import (
    RECORDS,
    assert_parked,
    build,
    cli,
    due_now,
    listed,
    relogin,
    state_of,
)


async def test_delete_parks_at_once_and_restore_brings_everything_back(
        lifecycle_settings: Any, lifecycle_db: Any) -> None:
    async with running(lifecycle_settings) as app:
        built = await build(app)
        org = built.org
        before = await state_of(lifecycle_db, org.id, "org_acme")

        deleted = await delete(app.http, org.auth, "Acme")

        # The seed's contract, at once.
        assert deleted.status_code == 200, deleted.text
        got = await app.http.post("/org/get", json={"organization_name": "Acme"})
        assert got.status_code == 404
        assert (await app.http.get("/admin/me", headers=org.auth)).status_code == 401
        names = await lifecycle_db.list_collection_names()
        assert "org_acme" not in names and f"parked_{org.id}" in names
        # The name and the admin's email are free for a new organization right away.
        again = await create_org(app.http, "Acme", email=org.email)
        assert again.id != org.id
        await assert_parked(lifecycle_db, {org.id: RECORDS})
        parked = await state_of(lifecycle_db, org.id, f"parked_{org.id}")
        assert parked["records"] == before["records"]
        assert parked["members"] == before["members"]

        [entry] = await listed(lifecycle_settings)
        assert entry["id"] == org.id and entry["organization_name"] == "Acme"
        assert entry["members"] == 2 and entry["state"] == "parked"
        window = (_at(entry["purge_after"]) - _at(entry["deleted_at"]))
        assert window == timedelta(days=7)

        # The new Acme goes again, so the old one can have its name back.
        assert (await delete(app.http, again.auth, "Acme")).status_code == 200
        await settled(lifecycle_db)
        restored = await cli(lifecycle_settings, "restore-deleted", org.id)

        assert restored.exit_code == 0, restored.output
        assert f"restored 'Acme' ({org.id}) with its collection org_acme and 2 member(s)" \
            in restored.output
        after = await state_of(lifecycle_db, org.id, "org_acme")
        assert after["records"] == before["records"]
        assert after["indexes"] == before["indexes"]
        assert after["policies"] == before["policies"] is not None
        assert after["members"] == before["members"]
        # The trail is whole, plus what the delete and the restore wrote.
        assert after["audit"][:len(before["audit"])] == before["audit"]
        assert [e["action"] for e in after["audit"][len(before["audit"]):]] == [
            "organization.delete", "organization.restore"]
        # Old tokens stay dead; the old passwords work.
        assert (await app.http.get("/admin/me", headers=org.auth)).status_code == 401
        assert (await app.http.get("/me", headers=built.member.auth)).status_code == 401
        await relogin(app, built)
        got = await app.http.post("/org/get", json={"organization_name": "Acme"})
        assert got.status_code == 200 and got.json()["id"] == org.id
        assert [e["id"] for e in await listed(lifecycle_settings)] == [again.id]
        await assert_consistent(lifecycle_db)


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_a_taken_name_is_refused_and_as_restores_under_another(
        lifecycle_settings: Any, lifecycle_db: Any) -> None:
    async with running(lifecycle_settings) as app:
        built = await build(app)
        assert (await delete(app.http, built.org.auth, "Acme")).status_code == 200
        newcomer = await create_org(app.http, "Acme", email="new@acme.example.com")

        refused = await cli(lifecycle_settings, "restore-deleted", built.org.id)

        assert refused.exit_code == 1
        assert "the name 'Acme' belongs to another organization now: restore it under " \
            "another name with --as NAME" in refused.output
        await assert_parked(lifecycle_db, {built.org.id: RECORDS})

        restored = await cli(lifecycle_settings, "restore-deleted", built.org.id,
                             "--as", "Acme Old")

        assert restored.exit_code == 0, restored.output
        assert "collection org_acme_old" in restored.output
        got = await app.http.post("/org/get", json={"organization_name": "Acme Old"})
        assert got.status_code == 200 and got.json()["id"] == built.org.id
        await relogin(app, built)
        mine = await app.http.post("/org/get", json={"organization_name": "Acme"})
        assert mine.json()["id"] == newcomer.id
        assert await lifecycle_db["org_acme_old"].count_documents({}) == RECORDS
        await assert_consistent(lifecycle_db)


async def test_members_whose_emails_are_taken_are_refused_by_name_or_skipped(
        lifecycle_settings: Any, lifecycle_db: Any) -> None:
    async with running(lifecycle_settings) as app:
        built = await build(app)
        assert (await delete(app.http, built.org.auth, "Acme")).status_code == 200
        await create_org(app.http, "Elsewhere", email=built.member.email)

        refused = await cli(lifecycle_settings, "restore-deleted", built.org.id)

        assert refused.exit_code == 1
        assert built.member.email in refused.output
        assert "--skip-conflicting-members" in refused.output
        await assert_parked(lifecycle_db, {built.org.id: RECORDS})

        restored = await cli(lifecycle_settings, "restore-deleted", built.org.id,
                             "--skip-conflicting-members")

        assert restored.exit_code == 0, restored.output
        assert "1 member(s)" in restored.output
        assert f"left out (emails taken): {built.member.email}" in restored.output
        answer = await app.http.post("/admin/login", json={
            "email": built.org.email, "password": built.org.password})
        assert answer.status_code == 200, answer.text
        await assert_consistent(lifecycle_db)
        assert await lifecycle_db["deleted_members"].count_documents({}) == 0


async def test_bad_input_is_one_clear_line_and_changes_nothing(
        lifecycle_settings: Any, lifecycle_db: Any) -> None:
    async with running(lifecycle_settings) as app:
        built = await build(app)
        assert (await delete(app.http, built.org.auth, "Acme")).status_code == 200
        await assert_parked(lifecycle_db, {built.org.id: RECORDS})

        not_an_id = await cli(lifecycle_settings, "restore-deleted", "acme")
        unknown = await cli(lifecycle_settings, "restore-deleted", str(ObjectId()))
        bad_name = await cli(lifecycle_settings, "restore-deleted", built.org.id,
                             "--as", "  !bad")

        assert not_an_id.exit_code == 1 and "is not an organization id" in not_an_id.output
        assert unknown.exit_code == 1
        assert "can be restored: it was never deleted" in unknown.output
        assert bad_name.exit_code == 1 and "must start with a letter" in bad_name.output
        await assert_parked(lifecycle_db, {built.org.id: RECORDS})


async def test_purge_after_the_window_keeps_only_the_final_audit_record(
        lifecycle_settings: Any, lifecycle_db: Any) -> None:
    async with running(lifecycle_settings) as app:
        built = await build(app)
        kept = await build(app, "Globex")
        assert (await delete(app.http, built.org.auth, "Acme")).status_code == 200
        assert (await delete(app.http, kept.org.auth, "Globex")).status_code == 200
        oid = ObjectId(built.org.id)
        trail = await lifecycle_db["audit_log"].count_documents({"organization_id": oid})

        early = await cli(lifecycle_settings, "purge")
        assert early.exit_code == 0 and "0 organization(s) purged" in early.output
        await due_now(lifecycle_db, built.org.id)

        purged = await cli(lifecycle_settings, "purge")

        assert purged.exit_code == 0, purged.output
        assert f"purged 'Acme' ({built.org.id}): {RECORDS} record(s), 2 member(s), " \
            f"{trail} audit entries" in purged.output
        assert "1 organization(s) purged" in purged.output
        await assert_parked(lifecycle_db, {kept.org.id: RECORDS})
        [final] = await lifecycle_db["audit_log"].find({"organization_id": oid}).to_list(None)
        assert final["action"] == "organization.purge" and final["target"] == "Acme"
        assert f"collection parked_{built.org.id} ({RECORDS} records), 2 members" \
            in final["reason"]
        for name in ("deleted_organizations", "deleted_members", "invitations"):
            assert await lifecycle_db[name].count_documents({"organization_id": oid}) == 0
        assert await lifecycle_db["deleted_organizations"].count_documents({"_id": oid}) == 0
        gone = await cli(lifecycle_settings, "restore-deleted", built.org.id)
        assert gone.exit_code == 1 and "No deleted organization" in gone.output


async def test_the_api_sweep_purges_what_is_due(
        lifecycle_settings: Any, lifecycle_db: Any) -> None:
    async with running(lifecycle_settings) as app:
        built = await build(app)
        assert (await delete(app.http, built.org.auth, "Acme")).status_code == 200
        await settled(lifecycle_db)
        await due_now(lifecycle_db, built.org.id)

    async with running(lifecycle_settings):  # its startup sweep
        await assert_parked(lifecycle_db, {})
        actions = [e["action"] for e in await lifecycle_db["audit_log"].find(
            {"organization_id": ObjectId(built.org.id)}).to_list(None)]
        assert actions == ["organization.purge"]


async def test_no_window_drops_everything_at_once_as_before(
        lifecycle_settings: Any, lifecycle_db: Any) -> None:
    settings = lifecycle_settings.model_copy(update={"DELETION_GRACE_DAYS": 0})
    async with running(settings) as app:
        built = await build(app)

        assert (await delete(app.http, built.org.auth, "Acme")).status_code == 200

        await assert_consistent(lifecycle_db)
        await assert_parked(lifecycle_db, {})
        assert await lifecycle_db["deleted_members"].count_documents({}) == 0
        assert await listed(settings) == []
        await create_org(app.http, "Acme", email=built.org.email)
