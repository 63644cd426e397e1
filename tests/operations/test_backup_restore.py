"""`org-service backup` and `restore`, through the CLI's entry point against the test
database: the round trip, refusals that write nothing, --as, --replace, conflicting
members and the dry run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import bson
import httpx
import pytest
import zstandard
from bson import ObjectId

from org_service.operations.archive import FORMAT, HEADER
from tests.helpers import app_with, client_for
from tests.operations.support import (
    MEMBER_PASSWORD,
    Seeded,
    invoke,
    invoke_json,
    log_in_all,
    master_state,
    seed,
    snapshot,
)
from tests.organizations.lifecycle_support import settled


@pytest.fixture
async def http(settings: Any, app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An API whose deletes settle (give up the name) within a second, not the suite's 20."""
    async with app_with(settings, TENANT_REQUEST_TIMEOUT_MS=500) as fast, \
            client_for(fast) as client:
        yield client


async def backup(name: str, out: Path) -> Any:
    return await invoke_json("backup", name, "--out", str(out))


async def backed_up(client: httpx.AsyncClient, tmp_path: Path) -> tuple[Seeded, Path]:
    """The seeded organization Acme and a backup of it."""
    seeded = await seed(client)
    file = tmp_path / "acme.backup"
    await backup("Acme", file)
    return seeded, file


async def tokens_dead_and_logins_work(client: httpx.AsyncClient, seeded: Seeded) -> None:
    for old in seeded.old_tokens:
        assert (await client.get("/admin/me", headers=old)).status_code == 401
    await log_in_all(client, seeded)
    assert (await invoke("check")).exit_code == 0


async def delete(client: httpx.AsyncClient, seeded: Seeded, master: Any) -> None:
    response = await client.request("DELETE", "/org/delete", headers=seeded.org.auth,
                                    json={"organization_name": seeded.org.name})
    assert response.status_code == 200, response.text
    await settled(master)


@pytest.mark.parametrize("window_days", [0, 7], ids=["dropped", "parked"])
async def test_round_trip_backup_delete_restore_brings_back_everything(
        settings: Any, master: Any, tmp_path: Path, window_days: int) -> None:
    async with app_with(settings, TENANT_REQUEST_TIMEOUT_MS=500,
                        DELETION_GRACE_DAYS=window_days) as app, client_for(app) as http:
        await round_trip(http, master, tmp_path, "organization.purge" if window_days
                         else "organization.delete")


async def round_trip(http: httpx.AsyncClient, master: Any, tmp_path: Path,
                     extra_action: str) -> None:
    seeded = await seed(http)
    before = await snapshot(master, seeded.org.id)
    file = tmp_path / "acme.backup"

    manifest = await backup("Acme", file)
    assert {s["name"]: s["count"] for s in manifest["sections"]} == {
        "organization": 1, "members": 3, "indexes": 3, "policies": 1, "records": 43,
        "audit": len(before["audit"])}
    await delete(http, seeded, master)
    assert await master["organizations"].count_documents({}) == 0

    result = await invoke("restore", str(file))

    assert result.exit_code == 0, result.output
    assert "wrote organization 'Acme'" in result.output
    after = await snapshot(master, seeded.org.id)
    assert after["records"] == before["records"]  # byte for byte
    assert after["indexes"] == before["indexes"]
    # The trail as it was, plus the restore's own entry and one more: the delete's
    # (dropped), or the purge's that made way for the file (parked; the purge took the
    # delete's entry with it).
    assert {k: v for k, v in after["audit"].items() if k in before["audit"]} == before["audit"]
    added = sorted(bson.decode(after["audit"][k])["action"]
                   for k in set(after["audit"]) - set(before["audit"]))
    assert added == sorted(["organization.restore", extra_action])
    ignore = ("updated_at",)
    assert {k: v for k, v in after["organization"].items() if k not in ignore} == {
        k: v for k, v in before["organization"].items() if k not in ignore}
    assert [m["token_version"] for m in after["members"]] == [
        m["token_version"] + 1 for m in before["members"]]
    assert [{k: v for k, v in m.items() if k != "token_version"} for m in after["members"]] \
        == [{k: v for k, v in m.items() if k not in ("token_version", "ended_sessions")}
            for m in before["members"]]
    # Nothing of the operation is left over.
    assert not [n for n in await master.list_collection_names() if n.startswith("restore_")]
    assert await master["lifecycle_ops"].count_documents({}) == 0
    # Everyone logs in with the old password; tokens from before stay dead.
    await tokens_dead_and_logins_work(http, seeded)


async def test_a_backup_is_refused_when_one_byte_is_flipped_before_anything_is_written(
        client: httpx.AsyncClient, master: Any, tmp_path: Path) -> None:
    _, file = await backed_up(client, tmp_path)
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0x01
    damaged = tmp_path / "damaged.backup"
    damaged.write_bytes(bytes(data))
    before = await master_state(master)

    for args in (("restore", str(damaged), "--as", "Other"),
                 ("restore", str(damaged), "--replace")):
        result = await invoke(*args)
        assert result.exit_code == 1, result.output
        assert "damaged" in result.output, result.output
    assert await master_state(master) == before


async def test_a_recompressed_file_with_a_changed_record_fails_its_checksum(
        client: httpx.AsyncClient, master: Any, tmp_path: Path) -> None:
    _, file = await backed_up(client, tmp_path)
    plain = bytearray(zstandard.ZstdDecompressor().decompressobj().decompress(
        file.read_bytes()))
    at = plain.index(b"feedback 7")
    plain[at + len("feedback ")] = ord("8")  # a valid document, another text
    forged = tmp_path / "forged.backup"
    forged.write_bytes(zstandard.ZstdCompressor(write_checksum=True).compress(bytes(plain)))
    before = await master_state(master)

    result = await invoke("restore", str(forged), "--as", "Other")

    assert result.exit_code == 1
    assert "checksum or count of section(s) records differ" in result.output, result.output
    assert await master_state(master) == before


async def test_unreadable_files_wrong_versions_and_unknown_names_are_clear_errors(
        client: httpx.AsyncClient, master: Any, tmp_path: Path) -> None:
    await seed(client)
    newer = tmp_path / "newer.backup"
    newer.write_bytes(zstandard.ZstdCompressor().compress(
        HEADER + bson.encode({"format": FORMAT, "format_version": 2})))
    garbage = tmp_path / "garbage.backup"
    garbage.write_bytes(b"not a backup at all" * 10)
    before = await master_state(master)
    cases = [
        (("restore", str(newer)), "has format version 2; this service reads version 1"),
        (("restore", str(garbage)), "is damaged or not a backup"),
        (("restore", str(tmp_path / "missing.backup")), "cannot read"),
        (("backup", "Nobody", "--out", str(tmp_path / "x")), "no organization named 'Nobody'"),
        (("restore", str(newer), "--as", "X", "--replace"), "exclude each other"),
    ]
    for args, said in cases:
        result = await invoke(*args)
        assert result.exit_code != 0, (args, result.output)
        assert said in result.output, (args, result.output)
    assert await master_state(master) == before
    assert not (tmp_path / "x").exists()


async def test_plain_restore_refuses_while_the_organization_lives(
        client: httpx.AsyncClient, tmp_path: Path) -> None:
    _, file = await backed_up(client, tmp_path)
    result = await invoke("restore", str(file))
    assert result.exit_code == 1
    assert "exists: --replace replaces it, --as NAME restores a copy" in result.output


async def test_restore_as_a_new_organization_refuses_conflicting_members_then_skips_them(
        client: httpx.AsyncClient, master: Any, tmp_path: Path) -> None:
    seeded, file = await backed_up(client, tmp_path)
    before = await master_state(master)

    refused = await invoke("restore", str(file), "--as", "Acme Copy")

    assert refused.exit_code == 1
    for email in [seeded.org.email, *seeded.members]:
        assert f"{email} (Acme)" in refused.output, refused.output
    assert await master_state(master) == before

    copy = await invoke_json("restore", str(file), "--as", "Acme Copy",
                             "--skip-conflicting-members")

    assert copy["members"] == 0 and len(copy["skipped_members"]) == 3
    original, restored = (await snapshot(master, seeded.org.id),
                          await snapshot(master, copy["organization"]["id"]))
    assert restored["organization"]["collection_name"] == "org_acme_copy"
    assert restored["records"] == original["records"]
    assert restored["indexes"] == original["indexes"]
    assert restored["organization"]["record_policies"] == original["organization"][
        "record_policies"]
    assert restored["members"] == []
    assert len(restored["audit"]) == len(original["audit"]) + 1  # and the restore's own
    assert not set(restored["audit"]) & set(original["audit"])  # new entries, new ids


async def test_restore_as_a_new_organization_gives_its_members_new_ids(
        http: httpx.AsyncClient, master: Any, tmp_path: Path) -> None:
    seeded, file = await backed_up(http, tmp_path)
    await delete(http, seeded, master)

    copy = await invoke_json("restore", str(file), "--as", "Acme Two")

    restored = await snapshot(master, copy["organization"]["id"])
    assert copy["organization"]["id"] != seeded.org.id
    ids = {m["email"]: m["_id"] for m in restored["members"]}
    assert set(ids) == {seeded.org.email, *seeded.members}
    assert not {str(i) for i in ids.values()} & {*seeded.members.values()}
    employee = next(m for m in restored["members"] if m["role"] == "employee")
    assert employee["manager_id"] == ids["manager@acme.example.com"]
    assert restored["organization"]["admin_user_id"] == str(ids[seeded.org.email])
    await log_in_all(http, seeded)


async def test_replace_puts_the_backup_back_over_the_live_organization(
        client: httpx.AsyncClient, master: Any, tmp_path: Path) -> None:
    seeded = await seed(client)
    before = await snapshot(master, seeded.org.id)
    file = tmp_path / "acme.backup"
    await backup("Acme", file)
    # Changed since: a record more, a member more, a policy gone.
    assert (await client.post("/org/records/feedback", headers=seeded.org.auth,
                              json={"late": True})).status_code == 201
    late = await client.post("/org/members", headers=seeded.org.auth, json={
        "email": "late@acme.example.com", "password": MEMBER_PASSWORD, "name": "Late"})
    assert late.status_code == 201, late.text

    result = await invoke("restore", str(file), "--replace")

    assert result.exit_code == 0, result.output
    after = await snapshot(master, seeded.org.id)
    assert after["records"] == before["records"]
    assert after["indexes"] == before["indexes"]
    assert {m["email"] for m in after["members"]} == {seeded.org.email, *seeded.members}
    assert after["organization"]["state"] == "active"
    await tokens_dead_and_logins_work(client, seeded)


async def test_replace_is_refused_unless_the_live_organization_is_the_backups(
        http: httpx.AsyncClient, master: Any, tmp_path: Path) -> None:
    seeded, file = await backed_up(http, tmp_path)
    await delete(http, seeded, master)
    await seed(http)  # another Acme: the same name, another id
    before = await master_state(master)

    result = await invoke("restore", str(file), "--replace")

    assert result.exit_code == 1
    assert "there is none" in result.output, result.output
    plain = await invoke("restore", str(file))
    assert plain.exit_code == 1
    assert "is taken by another organization" in plain.output, plain.output
    assert await master_state(master) == before


async def test_plain_restore_of_an_organization_parked_in_its_window_purges_the_parked_copy(
        http: httpx.AsyncClient, master: Any, tmp_path: Path) -> None:
    seeded, file = await backed_up(http, tmp_path)
    await delete(http, seeded, master)  # parked: the suite's window is the default 7 days
    parked = f"parked_{seeded.org.id}"
    assert parked in await master.list_collection_names()
    before = await master_state(master)

    dry = await invoke("restore", str(file), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would purge the parked copy" in dry.output, dry.output
    assert await master_state(master) == before

    result = await invoke("restore", str(file))

    assert result.exit_code == 0, result.output
    assert "purged the parked copy" in result.output, result.output
    assert parked not in await master.list_collection_names()
    assert await master["deleted_organizations"].count_documents({}) == 0
    assert await master["deleted_members"].count_documents({}) == 0
    restored = await master["organizations"].find_one({"_id": ObjectId(seeded.org.id)})
    assert restored["organization_name"] == "Acme" and restored["state"] == "active"
    # The purge said what it purged, and the restored trail keeps that entry.
    assert await master["audit_log"].count_documents(
        {"organization_id": ObjectId(seeded.org.id), "action": "organization.purge"}) == 1
    await tokens_dead_and_logins_work(http, seeded)


async def test_dry_run_says_what_would_be_written_and_writes_nothing(
        client: httpx.AsyncClient, master: Any, tmp_path: Path) -> None:
    seeded, file = await backed_up(client, tmp_path)
    before = await master_state(master)

    result = await invoke("restore", str(file), "--as", "Acme Copy",
                          "--skip-conflicting-members", "--dry-run")

    assert result.exit_code == 0, result.output
    assert "dry run:" in result.output
    assert "would write organization 'Acme Copy'" in result.output
    assert ("would write 0 member(s), 43 record(s), 3 index(es) (_id_, kind_id, "
            "kind_created, rx_by_score)") not in result.output  # _id_ is not copied
    assert "would write 0 member(s), 43 record(s), 3 index(es)" in result.output
    assert f"skipped 3 member(s) whose email belongs to another organization: " \
           f"{', '.join(sorted([seeded.org.email, *seeded.members]))}" in result.output
    assert await master_state(master) == before
