"""`org-service create-tenant`, `list`, `show` and `check [--repair]`, through the CLI's
entry point against the test database."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
from bson import ObjectId

from org_service.db import utcnow
from tests.helpers import login
from tests.operations.support import invoke, invoke_json, seed


async def test_create_tenant_reads_the_password_from_stdin(
        client: httpx.AsyncClient) -> None:
    result = await invoke("create-tenant", "--name", "Globex", "--email", "ops@globex.example",
                          "--password-stdin", input="first-pass-1\n")

    assert result.exit_code == 0, result.output
    assert "created 'Globex'" in result.output and "collection org_globex" in result.output
    await login(client, "ops@globex.example", "first-pass-1")
    again = await invoke("create-tenant", "--name", "Globex", "--email", "other@globex.example",
                         input="first-pass-1\n")
    assert again.exit_code == 1
    assert "An organization named 'Globex'" in again.output, again.output
    short = await invoke("create-tenant", "--name", "Initech", "--email", "a@initech.example",
                         input="x\n")
    assert short.exit_code == 1
    assert "password" in short.output, short.output


async def test_list_and_show_as_tables_and_json(client: httpx.AsyncClient) -> None:
    await seed(client, "Acme")
    await seed(client, "Globex", records=3)

    table = await invoke("list")
    rows = await invoke_json("list")
    shown = await invoke_json("show", "Acme")
    shown_table = await invoke("show", "Acme")

    assert table.exit_code == 0, table.output
    acme_line = next(line for line in table.output.splitlines() if "org_acme" in line)
    cells = [cell.strip() for cell in acme_line.split("│")[1:8]]
    assert cells[:5] == ["Acme", "acme", "org_acme", "3", "43"] and cells[6] == "active"
    assert cells[5].endswith("KiB"), cells
    assert [(r["name"], r["members"], r["records"], r["state"]) for r in rows] == [
        ("Acme", 3, 43, "active"), ("Globex", 3, 7, "active")]
    assert shown["kinds"] == {"feedback": 30, "payroll": 3, "tasks": 10}
    assert shown["members"] == {"owner/active": 1, "manager/active": 1,
                                "employee/active": 1}
    assert "rx_by_score" in shown["indexes"]
    assert shown["record_policies"] == {"payroll": {"read": ["owner", "admin"],
                                                    "write": ["owner", "admin"]}}
    assert shown_table.exit_code == 0 and "feedback: 30" in shown_table.output
    unknown = await invoke("show", "Nobody")
    assert unknown.exit_code == 1 and "no organization named 'Nobody'" in unknown.output


async def test_check_finds_each_kind_of_finding_and_repair_fixes_only_the_journals(
        client: httpx.AsyncClient, master: Any) -> None:
    await seed(client, "Acme", records=3)
    clean = await invoke("check")
    assert clean.exit_code == 0 and "no findings" in clean.output, clean.output

    ghost, gone = ObjectId(), ObjectId()
    await master["org_ghost"].insert_one({"kind": "x"})
    await master[f"parked_{gone}"].insert_one({"kind": "x"})
    await master["slug_claims"].insert_one({"_id": "nobody", "organization_id": ghost,
                                            "claimed_at": utcnow()})
    await master["members"].insert_one({"email": "lost@x.example", "email_key": "lost@x.example",
                                        "organization_id": ghost, "role": "owner"})
    # A create whose process died after claiming its name: the journal says what to undo.
    dead, past = ObjectId(), utcnow() - timedelta(minutes=5)
    await master["slug_claims"].insert_one({"_id": "half_made", "organization_id": dead,
                                            "claimed_at": past})
    await master["lifecycle_ops"].insert_one({
        "kind": "create", "organization_id": dead, "phase": "claimed", "owner": "gone",
        "token": "t", "lease_until": past, "started_at": past, "name": "Half Made",
        "slug": "half_made", "collection_name": "org_half_made"})

    result = await invoke("check", "--json")

    assert result.exit_code == 1
    findings = json.loads(result.stdout)["findings"]
    assert sorted((f["kind"], f["subject"]) for f in findings) == sorted([
        ("orphan_collection", "org_ghost"),
        ("parked_without_organization", f"parked_{gone}"),
        ("claim_without_owner", "nobody"),
        ("members_without_organization", str(ghost)),
        ("journal_past_lease", findings[[f["kind"] for f in findings].index(
            "journal_past_lease")]["subject"]),
    ]), findings
    table = await invoke("check")
    assert table.exit_code == 1 and "orphan_collection" in table.output

    repaired = await invoke("check", "--repair", "--json")

    assert repaired.exit_code == 1  # what the journal does not say is left for a person
    after = json.loads(repaired.stdout)
    assert after["repaired"] == 1
    assert sorted(f["kind"] for f in after["findings"]) == [
        "claim_without_owner", "members_without_organization", "orphan_collection",
        "parked_without_organization"]
    assert await master["slug_claims"].find_one({"_id": "half_made"}) is None
    assert await master["org_ghost"].count_documents({}) == 1


async def test_a_deleted_organization_is_listed_and_its_parked_collection_is_no_finding(
        client: httpx.AsyncClient, master: Any) -> None:
    # As the deletion restore window keeps one (issue 20): the document under the same id
    # in deleted_organizations, the collection parked as parked_<id>.
    gone, now = ObjectId(), utcnow()
    await master["deleted_organizations"].insert_one({
        "_id": gone, "organization_name": "Old Co", "slug": "old_co",
        "collection_name": "org_old_co", "deleted_at": now,
        "purge_after": now + timedelta(days=7)})
    await master[f"parked_{gone}"].insert_many([{"kind": "x"}, {"kind": "y"}])

    rows = await invoke_json("list")
    checked = await invoke("check", "--json")

    assert [(r["name"], r["collection"], r["records"], r["state"]) for r in rows] == [
        ("Old Co", f"parked_{gone}", 2, "deleted")]
    assert rows[0]["purge_after"] is not None
    assert checked.exit_code == 0, checked.output
