"""The frame of every `org-service` command (org_service/cli.py): the Typer app, settings
and database, one-line errors with exit code 1, JSON output."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError
from rich.console import Console
from rich.markup import escape

from org_service.config import OperatorSettings, configuration_problems, mask_credentials
from org_service.db import Document, create_client
from org_service.embedded import URL_FILE, published_url
from org_service.errors import as_service_error
from org_service.operations.archive import BackupFileError
from org_service.operations.operator import Operator, OperatorError
from org_service.operations.restore import Restorer, register
from org_service.organizations.errors import LifecycleError

T = TypeVar("T")
# The driver's appname of the command line (the API's is "org_service"): tests aim
# failpoints at it.
APP_NAME = "org_service-cli"
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")]

# Markdown: docstring lines wrapped in the source make one paragraph in --help.
app = typer.Typer(help="Operator commands of org_service.", no_args_is_help=True,
                  rich_markup_mode="markdown")

# Made per use, not at import: a console reads the terminal's width (COLUMNS) when it is
# made, and the command's environment is the one that counts.
def console() -> Console:
    return Console()


def errors() -> Console:
    return Console(stderr=True)


class NoDatabase(Exception):
    pass


def settings_or_fail() -> OperatorSettings:
    try:
        return OperatorSettings()
    except ValidationError as exc:
        # One line per problem, secrets never echoed (pydantic's own report would).
        raise NoDatabase("configuration error: " + "; ".join(
            configuration_problems(exc))) from None


def database_url(settings: OperatorSettings) -> str:
    if settings.MONGODB_URL:
        return settings.MONGODB_URL
    url = published_url(settings.EMBEDDED_DATA_DIR)
    if url is None:
        raise NoDatabase(
            f"MONGODB_URL is not set and no API runs an embedded database on "
            f"{settings.EMBEDDED_DATA_DIR.resolve()} (no {URL_FILE} there): start the API "
            f"(scripts/serve.sh) or set MONGODB_URL")
    return url


def run(work: Callable[[Operator], Awaitable[T]]) -> T:
    """Run `work` against the database of the settings; exit 1 with one line when there
    is none to reach, or when the work refuses (unknown name, bad file, a conflict)."""
    try:
        settings = settings_or_fail()
        url = database_url(settings)
    except NoDatabase as exc:
        fail(str(exc))

    async def run() -> T:
        client: AsyncMongoClient[Document] = create_client(url, settings, appname=APP_NAME)
        try:
            operator = Operator.of(client[settings.MASTER_DB_NAME], settings)
            # Recovery run from here (check --repair) knows how to finish a restore, a purge
            # or a restore from the window.
            register(operator.lifecycle, Restorer(operator))
            _ = operator.window
            result = await work(operator)
            await operator.lifecycle.settled()
            return result
        finally:
            await client.close()

    try:
        return asyncio.run(run())
    except PyMongoError as exc:
        # The URL may carry a password: never printed.
        fail(f"the database at {mask_credentials(url)} did not answer: {exc}")
    except (OperatorError, BackupFileError) as exc:
        fail(str(exc))
    except LifecycleError as exc:
        # Said as the API says it. Another lifecycle operation got in the way (or took this
        # one over): whatever this one had begun is undone or left to recovery by the
        # journal, as for the API.
        error = as_service_error(exc)
        fail(error.detail if error is not None else
             f"the organization is busy with another lifecycle operation "
             f"({type(exc).__name__}): try again in a moment")


def fail(message: str) -> NoReturn:
    errors().print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(1)


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))
