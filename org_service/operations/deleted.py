"""The restore-window commands of `org-service` (docs/lifecycle.md): deleted,
restore-deleted, purge. Each is a few lines over organizations/window.py."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from org_service.db import Document, object_id
from org_service.naming import clean_organization_name
from org_service.operations.operator import Operator, OperatorError
from org_service.operations.shell import JsonOption, app, console, emit_json, fail, run
from org_service.organizations.errors import NameTaken
from org_service.organizations.window import Restored


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


@app.command("deleted")
def deleted(as_json: JsonOption = False) -> None:
    """Deleted organizations that can still be restored (`restore-deleted ID`), and until
    when: after `purge after` the sweep purges them."""
    async def listing(operator: Operator) -> list[Document]:
        found = await operator.deleted.listing()
        for doc in found:
            doc["members"] = await operator.deleted.count_members(doc["_id"])
        return found

    found = run(listing)
    if as_json:
        emit_json([{
            "id": str(doc["_id"]), "organization_name": doc["organization_name"],
            "slug": doc["slug"], "collection_name": doc["collection_name"],
            "parked_collection": doc["parked_collection"], "state": doc["state"],
            "members": doc["members"],
            "deleted_by": str(doc["deleted_by"]) if doc.get("deleted_by") else None,
            "deleted_at": doc["deleted_at"].isoformat(),
            "purge_after": doc["purge_after"].isoformat()} for doc in found])
        return
    if not found:
        console().print("no deleted organizations in their restore window")
        return
    table = Table(title="Deleted organizations (restorable until purge after, UTC)")
    for column in ("id", "name", "collection", "members", "deleted at", "purge after",
                   "state"):
        table.add_column(column)
    for doc in found:
        table.add_row(str(doc["_id"]), doc["organization_name"], doc["collection_name"],
                      str(doc["members"]), _when(doc["deleted_at"]),
                      _when(doc["purge_after"]), doc["state"])
    console().print(table)


@app.command("restore-deleted")
def restore_deleted(
    organization_id: Annotated[str, typer.Argument(
        metavar="ID", help="The organization's id (see `deleted`).")],
    as_name: Annotated[str | None, typer.Option(
        "--as", help="Restore under this name (its old name is taken).")] = None,
    skip_conflicting_members: Annotated[bool, typer.Option(
        "--skip-conflicting-members",
        help="Leave out members whose emails belong to another organization now.")] = False,
) -> None:
    """Bring a deleted organization back within its restore window: its records, indexes,
    record policies, members (same passwords; every token from before the delete stays
    dead) and audit trail, under its old name or `--as NAME`."""
    oid = object_id(organization_id)
    if oid is None:
        fail(f"{organization_id!r} is not an organization id (24 hex digits; see "
             "`org-service deleted`)")
    if as_name is not None:
        try:
            as_name = clean_organization_name(as_name)
        except ValueError as exc:
            fail(f"--as {as_name!r}: the name {exc}")

    async def restore(operator: Operator) -> Restored:
        try:
            return await operator.window.restore(
                oid, as_name=as_name, skip_conflicting_members=skip_conflicting_members)
        except NameTaken as exc:
            hint = "another name" if as_name else "another name with --as NAME"
            raise OperatorError(f"the name {exc.name!r} belongs to another organization "
                                f"now: restore it under {hint}") from None

    restored = run(restore)
    console().print(
        f"restored {restored.organization_name!r} ({restored.organization_id}) with its "
        f"collection {restored.collection_name} and {restored.members} member(s)",
        highlight=False)
    if restored.skipped:
        console().print(f"left out (emails taken): {', '.join(restored.skipped)}",
                        highlight=False)


@app.command("purge")
def purge() -> None:
    """Purge now every deleted organization whose restore window is over (the API's sweep
    does it every LIFECYCLE_SWEEP_SECONDS): its collection, members and audit trail, all
    but one audit entry saying what was purged and when."""
    purged = run(lambda operator: operator.window.purge_due())
    for done in purged:
        console().print(
            f"purged {done.organization_name!r} ({done.organization_id}): {done.records} "
            f"record(s), {done.members} member(s), {done.audit_entries} audit entries",
            highlight=False)
    console().print(f"{len(purged)} organization(s) purged")
