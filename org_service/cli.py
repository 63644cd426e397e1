"""`org-service`: the operator's command line. No HTTP route does any of this: tenants must
not be able to, and an operator has the database at hand.

It reads the same settings as the API (environment and `.env`) but not JWT_SECRET_KEY. With
MONGODB_URL unset it talks to the embedded database of the API running on
EMBEDDED_DATA_DIR, at the address that API published there: SecantusDB lets one server
at a time open a data folder, so the CLI cannot start its own while the API runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from pydantic import ValidationError
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError
from rich.console import Console
from rich.table import Table

from org_service.auth.repository import LoginFailureRepository
from org_service.auth.throttle import ThrottleAdmin, ThrottleEntry
from org_service.config import OperatorSettings, configuration_problems, mask_credentials
from org_service.db import Document, create_client
from org_service.embedded import URL_FILE, published_url

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


def _run(work: Callable[[ThrottleAdmin], Awaitable[T]]) -> T:
    """Run `work` against the database of the settings; exit 1 with a message when there
    is none to reach."""
    try:
        settings = _settings()
        url = _database_url(settings)
    except NoDatabase as exc:
        errors().print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None

    async def run() -> T:
        client: AsyncMongoClient[Document] = create_client(url, settings)
        try:
            admin = ThrottleAdmin(LoginFailureRepository(client[settings.MASTER_DB_NAME]),
                                  settings)
            return await work(admin)
        finally:
            await client.close()

    try:
        return asyncio.run(run())
    except PyMongoError as exc:
        # The URL may carry a password: never printed.
        errors().print(f"[red]error:[/red] the database at {mask_credentials(url)} did not "
                       f"answer: {exc}")
        raise typer.Exit(1) from None


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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
