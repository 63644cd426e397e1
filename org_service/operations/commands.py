"""The organization commands of `org-service`: create-tenant, list, show, check, backup,
restore. Each is a few lines over operations/*: what to ask, what to print."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from org_service.db import Document
from org_service.operations import inspect
from org_service.operations.archive import counts
from org_service.operations.backup import backup as write_backup
from org_service.operations.operator import Operator, create_tenant
from org_service.operations.restore import Plan, Restorer
from org_service.operations.shell import JsonOption, app, console, emit_json, errors, fail, run


@contextmanager
def progress_bar() -> Iterator[Any]:
    """A Rich progress bar on stderr while walking an organization's data (shown only on a
    terminal); yields the callback the walk reports to."""
    bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    console=errors(), transient=True, disable=not errors().is_terminal)
    tasks: dict[str, Any] = {}

    def report(section: str, done: int, total: int | None) -> None:
        if section not in tasks:
            tasks[section] = bars.add_task(section, total=total)
        bars.update(tasks[section], completed=done, total=total)

    with bars:
        yield report


def _password(from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            fail("no password on stdin (one line)")
        return line
    password: str = typer.prompt("Owner's password", hide_input=True,
                                 confirmation_prompt=True)
    return password


@app.command("create-tenant")
def create_tenant_command(
    name: Annotated[str, typer.Option("--name", help="The organization's name.")],
    email: Annotated[str, typer.Option("--email", help="Its owner's email (the login).")],
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the owner's password from the first line of stdin "
        "(also when stdin is not a terminal); otherwise it is prompted for, twice.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Create an organization and its owner, as `POST /org/create` does (same rules)."""
    password = _password(password_stdin)
    org, owner = run(lambda operator: create_tenant(operator, name, email, password))
    view = {"id": str(org["_id"]), "organization_name": org["organization_name"],
            "collection_name": org["collection_name"], "owner_id": str(owner["_id"]),
            "owner_email": owner["email"]}
    if as_json:
        emit_json(view)
    else:
        console().print(f"created '{view['organization_name']}' (id {view['id']}, collection "
                        f"{view['collection_name']}), owner {view['owner_email']}")


def _size(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    raise AssertionError


@app.command("list")
def list_command(as_json: JsonOption = False) -> None:
    """Every organization: name, slug, collection, members, records, size, state (deleted
    ones still in their restore window too)."""
    rows = run(inspect.organizations)
    if as_json:
        emit_json(rows)
        return
    table = Table(title=f"Organizations ({len(rows)})")
    for column in ("name", "slug", "collection", "members", "records", "size", "state"):
        table.add_column(column, justify="right" if column in ("members", "records", "size")
                         else "left")
    for row in rows:
        table.add_row(row["name"], row["slug"], row["collection"], str(row["members"]),
                      str(row["records"]), _size(row["size_bytes"]), row["state"])
    console().print(table)


@app.command("show")
def show_command(name: Annotated[str, typer.Argument(help="The organization's name.")],
                 as_json: JsonOption = False) -> None:
    """One organization in detail: members by role, records by kind, indexes, policies,
    audit entries, and a lifecycle operation in flight if any."""
    view = run(lambda operator: inspect.show(operator, name))
    if as_json:
        emit_json(view)
        return
    table = Table(title=view["name"], show_header=False)
    table.add_column("field")
    table.add_column("value")
    for key, value in view.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items()) or "-"
        elif isinstance(value, list):
            value = ", ".join(map(str, value)) or "-"
        table.add_row(key, "-" if value is None else str(value))
    console().print(table)


@app.command("check")
def check_command(
    repair: Annotated[bool, typer.Option(
        "--repair", help="Finish or undo the journal's operations whose lease ran out "
        "(as the API's recovery does), then check again. Nothing else is changed.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Verify what the lifecycle guarantees: each organization has its one collection, no
    orphan or parked collection without an organization, no claim or collection owner
    without its organization, no journal entry past its lease, no member of an organization
    that does not exist. Exit code 1 on any finding."""
    async def work(operator: Operator) -> tuple[int, list[inspect.Finding]]:
        repaired = await operator.lifecycle.recover() if repair else 0
        return repaired, await inspect.check(operator)

    repaired, findings = run(work)
    if as_json:
        emit_json({"repaired": repaired, "findings": [f.view() for f in findings]})
    else:
        if repair:
            console().print(f"{repaired} journal operation(s) finished or undone")
        if findings:
            table = Table(title=f"Findings ({len(findings)})")
            for column in ("kind", "subject", "detail"):
                table.add_column(column)
            for finding in findings:
                table.add_row(finding.kind, finding.subject, finding.detail)
            console().print(table)
        else:
            console().print("no findings")
    if findings:
        raise typer.Exit(1)


@app.command("backup")
def backup_command(
    name: Annotated[str, typer.Argument(help="The organization's name.")],
    out: Annotated[Path, typer.Option("--out", help="The file to write (replaced if it "
                                      "exists, only once the backup is whole).")],
    as_json: JsonOption = False,
) -> None:
    """Write one organization to one file: its document, members (with password hashes),
    indexes, record policies, records and audit trail, with a manifest of checksums
    (docs/backup-format.md)."""
    with progress_bar() as report:
        manifest = run(lambda operator: write_backup(operator, name, out, report))
    if as_json:
        emit_json(manifest)
        return
    sections = counts(manifest)
    console().print(
        f"backed up '{manifest['organization']['name']}' to {out} "
        f"({_size(out.stat().st_size)}): " + ", ".join(f"{n} {k}" for k, n in
                                                       sections.items()))


def _print_plan(view: Document, *, dry_run: bool) -> None:
    org, verb = view["organization"], "would write" if dry_run else "wrote"
    lines = [
        f"{'dry run: ' if dry_run else ''}restore of {view['file']} "
        f"(backup of '{view['backup']['organization']['name']}', "
        f"{view['backup']['created_at']}), mode {view['mode']}",
        f"{verb} organization '{org['name']}' (id {org['id']}, collection "
        f"{org['collection_name']})",
        f"{verb} {view['members']} member(s), {view['records']} record(s), "
        f"{len(view['indexes'])} index(es) ({', '.join(view['indexes']) or '-'}), "
        f"{len(view['policies'])} record policy(ies), {view['audit_entries']} audit "
        f"entr(ies)",
    ]
    if view["purges_parked_copy_deleted_at"]:
        lines.insert(1, f"{'would purge' if dry_run else 'purged'} the parked copy of the "
                     f"organization deleted at {view['purges_parked_copy_deleted_at']} "
                     f"(`restore-deleted` would have brought that copy back instead)")
    if view["skipped_members"]:
        lines.append(f"skipped {len(view['skipped_members'])} member(s) whose email belongs "
                     f"to another organization: {', '.join(view['skipped_members'])}")
    for line in lines:
        console().print(line, soft_wrap=True, highlight=False)


@app.command("restore")
def restore_command(
    file: Annotated[str, typer.Argument(help="A backup file (`org-service backup`).")],
    as_name: Annotated[str | None, typer.Option(
        "--as", help="Restore as a new organization of this name (new id).")] = None,
    replace: Annotated[bool, typer.Option(
        "--replace", help="Replace the live organization the backup was taken of.")] = False,
    skip_conflicting_members: Annotated[bool, typer.Option(
        "--skip-conflicting-members", help="Leave out members whose email belongs to "
        "another organization (refused otherwise).")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Check the file and say what would be written; write nothing."
    )] = False,
    as_json: JsonOption = False,
) -> None:
    """Bring an organization back from a backup file, whole or not at all: every checksum
    is verified before anything is written. Without --as or --replace, under its original
    name and id (both must be free). Tokens issued before stay dead."""
    if as_name is not None and replace:
        raise typer.BadParameter("--as and --replace exclude each other")

    async def work(operator: Operator) -> Plan:
        restorer = Restorer(operator)
        plan = await restorer.plan(file, as_name=as_name, replace=replace,
                                   skip_conflicting=skip_conflicting_members)
        if not dry_run:
            with progress_bar() as report:
                await restorer.restore(plan, report)
        return plan

    plan = run(work)
    view = plan.view()
    if as_json:
        emit_json({**view, "dry_run": dry_run})
    else:
        _print_plan(view, dry_run=dry_run)
