"""`org-service`: the operator's command line. No HTTP route does any of this: tenants must
not be able to, and an operator has the database at hand.

It reads the same settings as the API (environment and `.env`) but not JWT_SECRET_KEY. With
MONGODB_URL unset it talks to the embedded database of the API running on
EMBEDDED_DATA_DIR, at the address that API published there: SecantusDB lets one server
at a time open a data folder, so the CLI cannot start its own while the API runs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError
from rich.console import Console
from rich.table import Table

from org_service.audit.repository import AuditRepository
from org_service.auth.repository import LoginFailureRepository
from org_service.auth.throttle import ThrottleAdmin, ThrottleEntry
from org_service.config import OperatorSettings, configuration_problems, mask_credentials
from org_service.db import Document, create_client, object_id
from org_service.embedded import URL_FILE, published_url
from org_service.errors import as_service_error
from org_service.naming import clean_organization_name
from org_service.organizations.errors import LifecycleError, NameTaken
from org_service.organizations.lifecycle import LifecycleManager
from org_service.organizations.window import Restored, RestoreWindow

T = TypeVar("T")

# Markdown: docstring lines wrapped in the source make one paragraph in --help.
app = typer.Typer(help="Operator commands of org_service.", no_args_is_help=True,
                  rich_markup_mode="markdown")
throttle_app = typer.Typer(
    help="Login and create throttling (429s) kept in the database.", no_args_is_help=True,
    rich_markup_mode="markdown")
app.add_typer(throttle_app, name="throttle")

# Made per use, not at import: a console reads the terminal's width (COLUMNS) when it is
# made, and the command's environment is the one that counts.
def console() -> Console:
    return Console()


def errors() -> Console:
    return Console(stderr=True)


class NoDatabase(Exception):
    pass


def _settings() -> OperatorSettings:
    try:
        return OperatorSettings()
    except ValidationError as exc:
        # One line per problem, secrets never echoed (pydantic's own report would).
        raise NoDatabase("configuration error: " + "; ".join(
            configuration_problems(exc))) from None


def _database_url(settings: OperatorSettings) -> str:
    if settings.MONGODB_URL:
        return settings.MONGODB_URL
    url = published_url(settings.EMBEDDED_DATA_DIR)
    if url is None:
        raise NoDatabase(
            f"MONGODB_URL is not set and no API runs an embedded database on "
            f"{settings.EMBEDDED_DATA_DIR.resolve()} (no {URL_FILE} there): start the API "
            f"(scripts/serve.sh) or set MONGODB_URL")
    return url


def fail(message: str) -> NoReturn:
    errors().print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(1)


def _on_database(work: Callable[[AsyncDatabase[Document], OperatorSettings], Awaitable[T]]
                 ) -> T:
    """Run `work` against the master database of the settings; exit 1 with a message when
    there is none to reach, or when the lifecycle refuses (its reason, as the API says it)."""
    try:
        settings = _settings()
        url = _database_url(settings)
    except NoDatabase as exc:
        fail(str(exc))

    async def run() -> T:
        client: AsyncMongoClient[Document] = create_client(url, settings)
        try:
            return await work(client[settings.MASTER_DB_NAME], settings)
        finally:
            await client.close()

    try:
        return asyncio.run(run())
    except PyMongoError as exc:
        # The URL may carry a password: never printed.
        fail(f"the database at {mask_credentials(url)} did not answer: {exc}")
    except LifecycleError as exc:
        error = as_service_error(exc)
        fail(error.detail if error is not None else repr(exc))


def _run(work: Callable[[ThrottleAdmin], Awaitable[T]]) -> T:
    return _on_database(lambda db, settings: work(
        ThrottleAdmin(LoginFailureRepository(db), settings)))


@throttle_app.command("clear")
def clear(
    address: Annotated[str | None, typer.Option(
        help=("A client address: its failed logins (for any email), its creates and its "
              "invalid invitation links."))] = None,
    email: Annotated[str | None, typer.Option(
        help="An admin email: its failed logins from any address.")] = None,
) -> None:
    """Forget the throttling counters of a client address and/or an email: their next
    login or create is not refused with 429."""
    if address is None and email is None:
        raise typer.BadParameter("give --address, --email or both")
    cleared = _run(lambda admin: admin.clear(address=address, email=email))
    console().print(f"{cleared} throttling counter(s) cleared")


def _table(entries: list[ThrottleEntry]) -> Table:
    table = Table(title="Throttling counters (live)")
    for column in ("kind", "address", "email key", "attempts", "limit", "throttled",
                   "until (UTC)"):
        table.add_column(column)
    for entry in entries:
        table.add_row(entry.kind, entry.address or "-",
                      entry.email_key.split(":", 1)[1][:12] if entry.email_key else "-",
                      str(entry.attempts), str(entry.limit),
                      "yes" if entry.throttled else "no",
                      entry.until.strftime("%Y-%m-%d %H:%M:%S"))
    return table


@throttle_app.command("list")
def list_entries() -> None:
    """Live counters of failed logins and creates: who, how many, until when. Emails are
    kept only hashed: `throttle clear --email` finds them."""
    entries = _run(lambda admin: admin.entries())
    if not entries:
        console().print("no throttling counters")
        return
    console().print(_table(entries))


# -- the restore window of deleted organizations (docs/lifecycle.md) ----------------------


def _window_work(work: Callable[[RestoreWindow], Awaitable[T]]) -> T:
    async def run(db: AsyncDatabase[Document], settings: OperatorSettings) -> T:
        lifecycle = LifecycleManager.on(db, settings)
        try:
            return await work(RestoreWindow(lifecycle, AuditRepository(db)))
        finally:
            await lifecycle.close()

    return _on_database(run)


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


@app.command("deleted")
def deleted(json_out: Annotated[bool, typer.Option(
        "--json", help="One JSON array, for scripts.")] = False) -> None:
    """Deleted organizations that can still be restored (`restore-deleted ID`), and until
    when: after `purge after` the sweep purges them."""
    async def listing(window: RestoreWindow) -> list[Document]:
        found = await window.deleted.listing()
        for doc in found:
            doc["members"] = await window.deleted.count_members(doc["_id"])
        return found

    found = _window_work(listing)
    if json_out:
        typer.echo(json.dumps([{
            "id": str(doc["_id"]), "organization_name": doc["organization_name"],
            "slug": doc["slug"], "collection_name": doc["collection_name"],
            "parked_collection": doc["parked_collection"], "state": doc["state"],
            "members": doc["members"],
            "deleted_by": str(doc["deleted_by"]) if doc.get("deleted_by") else None,
            "deleted_at": doc["deleted_at"].isoformat(),
            "purge_after": doc["purge_after"].isoformat()} for doc in found]))
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

    async def restore(window: RestoreWindow) -> Restored:
        try:
            return await window.restore(oid, as_name=as_name,
                                        skip_conflicting_members=skip_conflicting_members)
        except NameTaken as exc:
            hint = "another name" if as_name else "another name with --as NAME"
            fail(f"the name {exc.name!r} belongs to another organization now: restore it "
                 f"under {hint}")

    restored = _window_work(restore)
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
    purged = _window_work(lambda window: window.purge_due())
    for done in purged:
        console().print(
            f"purged {done.organization_name!r} ({done.organization_id}): {done.records} "
            f"record(s), {done.members} member(s), {done.audit_entries} audit entries",
            highlight=False)
    console().print(f"{len(purged)} organization(s) purged")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
