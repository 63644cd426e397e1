"""scripts/test.sh: it refuses at once what it would otherwise find missing minutes later."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What test.sh and _setup.sh call before anything slow, and nothing else.
TOOLS = ("bash", "dirname", "sha1sum", "cut", "rm", "touch")


def bin_dir(tmp_path: Path, fakes: dict[str, str]) -> Path:
    """A PATH of its own: symlinks to the basic tools plus the given fake scripts."""
    path = tmp_path / "bin"
    path.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, tool
        (path / tool).symlink_to(found)
    # The interpreter itself: python3 on PATH may be a version manager's shim, which needs
    # more of PATH than this one has.
    (path / "python3").symlink_to(Path(sys.executable).resolve())
    for name, script in fakes.items():
        (path / name).write_text(f"#!/bin/sh\n{script}\n")
        (path / name).chmod(0o755)
    return path


def run_test_sh(path: Path, script: str = "scripts/test.sh") -> tuple[int, str, str, float]:
    env = {k: v for k, v in os.environ.items() if k != "PATH"}
    env["PATH"] = str(path)
    started = time.monotonic()
    # Its own session: were the check missing, test.sh would go on to ruff and pytest,
    # and those are killed with it at the timeout.
    process = subprocess.Popen([shutil.which("bash") or "bash", script], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        out, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
    return process.returncode, out, err, time.monotonic() - started


NEEDS = ("needs Node.js 18+ and npm for the Postman/Newman run: apt install nodejs npm")


@pytest.mark.parametrize("script", ["scripts/test.sh", "scripts/postman.sh"])
def test_without_node_and_npm_the_scripts_stop_at_once_saying_what_to_install(
        tmp_path: Path, script: str) -> None:
    status, out, err, seconds = run_test_sh(bin_dir(tmp_path, {}), script)
    assert status == 1 and seconds < 10, (status, seconds, out, err)
    assert out == ""  # nothing ran: no lint, no tests, no install
    assert err.splitlines() == [f"{script} {NEEDS} (missing: node npm)"]


def test_npm_alone_missing_is_named(tmp_path: Path) -> None:
    status, out, err, _ = run_test_sh(bin_dir(tmp_path, {"node": "echo 20"}))
    assert status == 1 and out == ""
    assert err.splitlines() == [f"scripts/test.sh {NEEDS} (missing: npm)"]


def test_an_old_node_is_refused_with_its_version(tmp_path: Path) -> None:
    old_node = 'case "$1" in --version) echo v16.20.2;; *) echo 16;; esac'
    status, out, err, _ = run_test_sh(bin_dir(tmp_path, {"node": old_node, "npm": "true"}))
    assert status == 1 and out == ""
    assert err.splitlines() == [
        f"scripts/test.sh {NEEDS} (missing: Node.js 18+ (found v16.20.2))"]
