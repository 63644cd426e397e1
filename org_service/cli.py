"""`org-service`: the operator's command line. No HTTP route does any of this: tenants must
not be able to, and an operator has the database at hand.

It reads the same settings as the API (environment and `.env`) but not JWT_SECRET_KEY. With
MONGODB_URL unset it talks to the embedded database of the API running on
EMBEDDED_DATA_DIR, at the address that API published there: SecantusDB lets one server
at a time open a data folder, so the CLI cannot start its own while the API runs.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer
from rich.table import Table

from org_service.auth.repository import LoginFailureRepository
from org_service.auth.throttle import ThrottleAdmin, ThrottleEntry
from org_service.operations import commands, deleted
from org_service.operations.operator import Operator
from org_service.operations.shell import JsonOption, app, console, emit_json, run

throttle_app = typer.Typer(
    help="Login and create throttling (429s) kept in the database.", no_args_is_help=True,
    rich_markup_mode="markdown")
app.add_typer(throttle_app, name="throttle")
# The organization commands (create-tenant, list, show, check, backup, restore) and the
# restore window's (deleted, restore-deleted, purge).
__all__ = ["app", "commands", "deleted", "main"]


def _throttle(operator: Operator) -> ThrottleAdmin:
    return ThrottleAdmin(LoginFailureRepository(operator.db), operator.settings)


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
    cleared = run(lambda operator: _throttle(operator).clear(address=address, email=email))
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
def list_entries(as_json: JsonOption = False) -> None:
    """Live counters of failed logins and creates: who, how many, until when. Emails are
    kept only hashed: `throttle clear --email` finds them."""
    entries = run(lambda operator: _throttle(operator).entries())
    if as_json:
        emit_json([dataclasses.asdict(entry) for entry in entries])
        return
    if not entries:
        console().print("no throttling counters")
        return
    console().print(_table(entries))



def main() -> None:
    app()


if __name__ == "__main__":
    main()
