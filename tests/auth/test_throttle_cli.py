"""`org-service throttle`: operators clear login and create throttling from the command line,
against the database the API uses (here the test database, through MONGODB_URL)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner, Result

from org_service import cli
from org_service.embedded import URL_FILE, free_port, publish_url
from tests.helpers import client_for, create_org, login

HERE, THERE = "198.51.100.20", "198.51.100.30"


async def invoke(*args: str, **env: str | None) -> Result:
    # In a thread: the command runs its own event loop, and this test's loop is running.
    return await asyncio.to_thread(CliRunner().invoke, cli.app, list(args), env=env)


def cleared(result: Result) -> int:
    count, said = result.output.strip().split(" ", 1)
    assert said == "throttling counter(s) cleared", result.output
    return int(count)


async def fail_logins(client: httpx.AsyncClient, count: int, email: str | None = None) -> None:
    for n in range(count):
        response = await client.post("/admin/login", json={
            "email": email or f"guess{n}@example.com", "password": "wrong-password"})
        assert response.status_code == 401, response.text


async def status_of_login(client: httpx.AsyncClient, email: str, password: str) -> int:
    response = await client.post("/admin/login", json={"email": email, "password": password})
    return response.status_code


async def test_clearing_an_address_ends_its_lockout_and_only_its_own(app: Any) -> None:
    async with client_for(app, HERE) as here, client_for(app, THERE) as there:
        org = await create_org(here, "Acme")
        await fail_logins(here, 20)
        await fail_logins(there, 20)
        assert await status_of_login(here, org.email, org.password) == 429
        assert await status_of_login(there, org.email, org.password) == 429

        result = await invoke("throttle", "clear", "--address", HERE)

        assert result.exit_code == 0, result.output
        # The address's own counter, one per email guessed from it, and its creates.
        assert cleared(result) == 22
        await login(here, org.email, org.password)
        assert await status_of_login(there, org.email, org.password) == 429


async def test_clearing_an_address_also_ends_the_lockout_of_an_email_from_it(app: Any) -> None:
    # Five failures lock this email out from this address (the pair counter), well below
    # the address's own limit: clearing the address must reach that counter too.
    async with client_for(app, HERE) as here:
        org = await create_org(here, "Acme")
        await fail_logins(here, 5, org.email)
        assert await status_of_login(here, org.email, org.password) == 429

        result = await invoke("throttle", "clear", "--address", HERE)

        assert result.exit_code == 0, result.output
        await login(here, org.email, org.password)


async def test_clearing_an_email_ends_its_lockout_and_only_its_own(app: Any) -> None:
    async with client_for(app, HERE) as here, client_for(app, THERE) as there:
        acme = await create_org(here, "Acme")
        globex = await create_org(there, "Globex")
        await fail_logins(here, 5, acme.email)
        await fail_logins(there, 5, globex.email)
        assert await status_of_login(here, acme.email, acme.password) == 429
        assert await status_of_login(there, globex.email, globex.password) == 429

        # Emails are matched as at login: case does not matter.
        result = await invoke("throttle", "clear", "--email", acme.email.upper())

        assert result.exit_code == 0, result.output
        assert cleared(result) == 2  # this email from HERE, and from anywhere
        await login(here, acme.email, acme.password)
        assert await status_of_login(there, globex.email, globex.password) == 429


async def test_clearing_creates_of_an_address(app: Any) -> None:
    async with client_for(app, HERE) as here:
        for n in range(20):
            await create_org(here, f"Org {n}")
        refused = await here.post("/org/create", json={
            "organization_name": "One More", "email": "one@more.example.com",
            "password": "secure123"})
        assert refused.status_code == 429

        result = await invoke("throttle", "clear", "--address", HERE)

        assert result.exit_code == 0, result.output
        await create_org(here, "One More")


async def test_unknown_address_or_email_clears_nothing(app: Any) -> None:
    async with client_for(app, HERE) as here:
        await fail_logins(here, 3)
    result = await invoke("throttle", "clear", "--address", THERE,
                          "--email", "nobody@example.com")
    assert result.exit_code == 0, result.output
    assert cleared(result) == 0


async def test_clear_wants_an_address_or_an_email(app: Any) -> None:
    result = await invoke("throttle", "clear")
    assert result.exit_code == 2
    assert "give --address, --email or both" in result.output


async def test_list_shows_live_counters(app: Any) -> None:
    async with client_for(app, HERE) as here:
        org = await create_org(here, "Acme")
        await fail_logins(here, 5, org.email)

    result = await invoke("throttle", "list", COLUMNS="200")

    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if HERE in line]
    # The pair (this email from here: 5 of 5, throttled), the address (5 of 20) and the
    # create (1 of 20); the email from anywhere is listed by its hashed key only.
    assert len(rows) == 3, result.output
    assert any(" pair " in row and " 5 " in row and " yes " in row for row in rows)
    assert any(" address " in row and " 20 " in row and " no " in row for row in rows)
    assert org.email not in result.output


async def test_without_mongodb_url_it_uses_the_address_the_api_published(
        app: Any, tmp_path: Path) -> None:
    async with client_for(app, HERE) as here:
        await fail_logins(here, 20)
    publish_url(tmp_path, os.environ["MONGODB_URL"])

    # No JWT_SECRET_KEY either: the CLI does not need it.
    result = await invoke("throttle", "clear", "--address", HERE, MONGODB_URL=None,
                          EMBEDDED_DATA_DIR=str(tmp_path), JWT_SECRET_KEY=None)

    assert result.exit_code == 0, result.output
    assert cleared(result) == 21  # the address's, and one per email guessed from it


async def test_without_mongodb_url_and_no_api_running_it_says_so(tmp_path: Path) -> None:
    result = await invoke("throttle", "clear", "--address", HERE, MONGODB_URL=None,
                          EMBEDDED_DATA_DIR=str(tmp_path), COLUMNS="300")
    assert result.exit_code == 1
    assert f"no {URL_FILE} there" in result.output


async def test_a_database_that_does_not_answer_is_one_line_without_its_password(
        tmp_path: Path) -> None:
    url = f"mongodb://operator:s3cret-password@127.0.0.1:{free_port()}/?directConnection=true"

    result = await invoke("throttle", "list", MONGODB_URL=url, MONGODB_TIMEOUT_MS="300",
                          COLUMNS="300")

    assert result.exit_code == 1
    assert "did not answer" in result.output
    assert "s3cret-password" not in result.output and "operator:" not in result.output


ROOT = Path(__file__).resolve().parents[2]


def test_a_development_lockout_on_the_embedded_database_is_cleared(tmp_path: Path) -> None:
    """The case that asked for the command: the API on the embedded database (no
    MONGODB_URL) in its own process, 20 failed logins from 127.0.0.1, the CLI in another."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MONGODB_URL"}
    env.update(EMBEDDED_DATA_DIR=str(tmp_path / "data"), MASTER_DB_NAME="cli_lockout",
               PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
    api = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "org_service.main:app", "--port", str(port),
         "--no-access-log"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        assert (tmp_path / "data" / URL_FILE).read_text().startswith("mongodb://127.0.0.1:")

        guesses = iter(range(1000))

        def failed_login(**headers: str) -> int:
            return httpx.post(f"{base}/admin/login", headers=headers, json={
                "email": f"guess{next(guesses)}@example.com",
                "password": "wrong-password"}).status_code

        # The Postman collection's own address: uvicorn believes X-Forwarded-For from
        # 127.0.0.1, so its failures do not count against the developer's address.
        collection = {"X-Forwarded-For": "198.18.7.7"}
        assert [failed_login(**collection) for _ in range(21)][-1] == 429
        assert [failed_login() for _ in range(20)] == [401] * 20
        assert failed_login() == 429

        env.pop("JWT_SECRET_KEY", None)  # the CLI does not need it
        cleared = subprocess.run(
            [sys.executable, "-m", "org_service.cli", "throttle", "clear",
             "--address", "127.0.0.1"], cwd=tmp_path, env=env, capture_output=True,
            text=True, timeout=60)

        assert cleared.returncode == 0, cleared.stderr
        # The address's counter and one per email guessed from it.
        assert cleared.stdout.strip() == "21 throttling counter(s) cleared"
        assert failed_login() == 401
        assert failed_login(**collection) == 429
    finally:
        api.terminate()
        api.wait(timeout=60)
    assert not (tmp_path / "data" / URL_FILE).exists()
