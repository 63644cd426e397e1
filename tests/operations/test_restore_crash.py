"""A restore whose process dies half way leaves nothing (before its commit point) or the
whole organization (after it), once recovery has run. The command runs as a real process
(`python -m org_service.cli restore`), held on the server by a failpoint at the step the
test wants, and killed there (SIGKILL: no clean-up of its own)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from org_service.db import utcnow
from org_service.operations.restore import RESTORE
from org_service.operations.shell import APP_NAME
from tests.helpers import app_with, client_for
from tests.operations.support import invoke, invoke_json, log_in_all, seed, snapshot
from tests.organizations.lifecycle_support import settled

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def http(settings: Any, app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with app_with(settings, TENANT_REQUEST_TIMEOUT_MS=500) as fast, \
            client_for(fast) as client:
        yield client


async def backed_up_and_deleted(http: httpx.AsyncClient, master: Any, tmp_path: Path
                                ) -> tuple[Any, dict[str, Any], Path]:
    seeded = await seed(http)
    before = await snapshot(master, seeded.org.id)
    file = tmp_path / "acme.backup"
    await invoke_json("backup", "Acme", "--out", str(file))
    response = await http.request("DELETE", "/org/delete", headers=seeded.org.auth,
                                  json={"organization_name": "Acme"})
    assert response.status_code == 200, response.text
    await settled(master)
    return seeded, before, file


async def restore_killed_when(raw_client: Any, master: Any, file: Path, command: str,
                              reached: Any) -> None:
    """Run `restore FILE` in its own process with `command` held on the server, wait for
    `reached(master)`, kill the process, and wait until its lease has run out."""
    await raw_client.admin.command({
        "configureFailPoint": "failCommand", "mode": "alwaysOn",
        "data": {"failCommands": [command], "appName": APP_NAME, "blockConnection": True,
                 "blockTimeMS": 15_000}})
    env = {**os.environ, "LIFECYCLE_LEASE_SECONDS": "1", "MONGODB_TIMEOUT_MS": "1500",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    log = file.with_suffix(".log")
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "org_service.cli", "restore", str(file), env=env,
            stdout=output, stderr=subprocess.STDOUT)
    try:
        for _ in range(600):
            if await reached(master):
                break
            assert process.returncode is None, log.read_text()
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the restore never reached the step")
    finally:
        process.kill()
        await asyncio.wait_for(process.wait(), 30)
        await raw_client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
    # Recovery takes over only once the dead process's lease has run out.
    for _ in range(600):
        op = await master["lifecycle_ops"].find_one({"kind": RESTORE})
        if op is None or op["lease_until"] < utcnow():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the lease never ran out")


async def staged(master: Any) -> bool:
    """Members reserved and the audit staged: the commit point is still ahead."""
    names = await master.list_collection_names()
    return any(n.endswith("_audit") and n.startswith("restore_") for n in names) and \
        await master["members"].count_documents({"restore_op": {"$exists": True}}) == 3


async def committed(master: Any) -> bool:
    return await master["lifecycle_ops"].count_documents({"phase": "committed"}) == 1


async def test_a_restore_killed_before_its_commit_point_leaves_nothing(
        http: httpx.AsyncClient, master: Any, raw_client: Any, tmp_path: Path) -> None:
    _, _, file = await backed_up_and_deleted(http, master, tmp_path)

    await restore_killed_when(raw_client, master, file, "createIndexes", staged)
    result = await invoke("check", "--repair")

    assert result.exit_code == 0, result.output
    assert await master["organizations"].count_documents({}) == 0
    assert await master["members"].count_documents({}) == 0
    assert await master["slug_claims"].count_documents({}) == 0
    assert await master["tenant_collections"].count_documents({}) == 0
    assert await master["lifecycle_ops"].count_documents({}) == 0
    assert [n for n in await master.list_collection_names()
            if n.startswith(("restore_", "org_"))] == []
    # And the file still restores, whole.
    assert (await invoke("restore", str(file))).exit_code == 0


async def test_a_restore_killed_after_its_commit_point_is_finished_by_recovery(
        http: httpx.AsyncClient, master: Any, raw_client: Any, tmp_path: Path) -> None:
    seeded, before, file = await backed_up_and_deleted(http, master, tmp_path)

    await restore_killed_when(raw_client, master, file, "renameCollection", committed)
    assert await master["organizations"].count_documents({}) == 0  # not yet
    result = await invoke("check", "--repair")

    assert result.exit_code == 0, result.output
    after = await snapshot(master, seeded.org.id)
    assert after["records"] == before["records"]
    assert after["indexes"] == before["indexes"]
    assert len(after["members"]) == 3
    assert not [n for n in await master.list_collection_names() if n.startswith("restore_")]
    await log_in_all(http, seeded)
