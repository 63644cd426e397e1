"""`docker compose exec api org-service list`: the image installs the project (so its
console script, with the operations package), and the api service's environment names the
database, which `exec` passes on. Checked as far as a machine without a Docker engine
allows, then the console script's entry point run as a process of its own."""

from __future__ import annotations

import asyncio
import fnmatch
import importlib
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import create_org

ROOT = Path(__file__).resolve().parents[2]


def test_the_image_installs_the_console_script_with_every_command() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    module, function = project["project"]["scripts"]["org-service"].split(":")
    main = getattr(importlib.import_module(module), function)
    assert callable(main)
    include = project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert any(fnmatch.fnmatch("org_service.operations", pattern) for pattern in include)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "/opt/venv/bin/pip install --no-deps ." in dockerfile
    assert "ENV PATH=/opt/venv/bin:$PATH" in dockerfile  # `org-service` is on the PATH
    api = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["api"]
    assert api["environment"]["MONGODB_URL"].startswith("mongodb://mongo:27017/")
    help_text = subprocess.run([sys.executable, "-m", "org_service.cli", "--help"],
                               capture_output=True, text=True, timeout=60, check=True,
                               env={**os.environ, "COLUMNS": "200"}).stdout
    for command in ("create-tenant", "list", "show", "check", "backup", "restore",
                    "deleted", "restore-deleted", "purge", "throttle"):
        assert f" {command} " in help_text, command


async def test_the_console_scripts_entry_point_lists_organizations(client: Any) -> None:
    await create_org(client, "Acme")
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("JWT_SECRET_KEY", None)  # an operator's shell need not have it
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", "import sys; from org_service.cli import main; "
         "sys.argv[0] = 'org-service'; main()", "list", "--json"],
        capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert [(row["name"], row["members"], row["state"]) for row in json.loads(done.stdout)] \
        == [("Acme", 1, "active")]
