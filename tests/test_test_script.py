"""scripts/test.sh: it refuses at once what it would otherwise find missing minutes later,
and its last line sums the run up (scripts/run_summary.py)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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


def load_summary() -> Any:
    spec = importlib.util.spec_from_file_location(
        "run_summary", ROOT / "scripts" / "run_summary.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_summary"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


summary = load_summary()


def write_reports(logs: Path, *, tests: int, failures: int, errors: int, skipped: int,
                  seconds: float, requests: tuple[int, int], assertions: tuple[int, int],
                  newman_log: str = "") -> None:
    logs.mkdir(exist_ok=True)
    (logs / "pytest.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" '
        f'errors="{errors}" failures="{failures}" skipped="{skipped}" tests="{tests}" '
        f'time="{seconds}"></testsuite></testsuites>')
    stats = {"requests": {"total": requests[0], "pending": 0, "failed": requests[1]},
             "assertions": {"total": assertions[0], "pending": 0, "failed": assertions[1]}}
    (logs / "newman.json").write_text(json.dumps({"run": {"stats": stats, "failures": []}}))
    (logs / "newman.log").write_text(newman_log)


def run_summary(logs: Path, capsys: pytest.CaptureFixture[str],
                **statuses: int) -> tuple[int, list[str]]:
    argv = ["--logs", str(logs)]
    for step in ("ruff", "mypy", "pytest", "newman"):
        argv += [f"--{step}", str(statuses.get(step, 0))]
    status = summary.main(argv)
    return status, capsys.readouterr().out.splitlines()


def test_the_summary_of_a_clean_run_is_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_reports(tmp_path, tests=812, failures=0, errors=0, skipped=3, seconds=512.25,
                  requests=(55, 0), assertions=(164, 0), newman_log="lots of newman\n" * 300)
    status, lines = run_summary(tmp_path, capsys)
    assert status == 0
    assert lines == [
        "test.sh: ruff ok | mypy ok | pytest 809 passed, 0 failed, 0 errors, 3 skipped in "
        "512.2s | newman 55 requests (0 failed), 164 assertions (0 failed) | all passed"]


FAILED_NEWMAN_LOG = """\
waiting for the API on http://127.0.0.1:40000
→ Create
  POST http://127.0.0.1:40000/org/create [500 Internal Server Error, 120B, 8ms]
  1. status is 201

\x1b[31m  # \x1b[39m\x1b[31m failure        \x1b[39m\x1b[31m detail   \x1b[39m
\x1b[90m    \x1b[39m\x1b[90m                \x1b[39m\x1b[90m          \x1b[39m
 1.  AssertionError  status is 201
                     expected 500 to equal 201
                     at assertion:1 in test-script
                     inside "Create"
newman failed (exit 1); API log tail:
{"level": "ERROR", "message": "boom"}
"""


def test_a_failed_run_shows_newmans_failures_then_the_summary_last(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_reports(tmp_path, tests=10, failures=2, errors=1, skipped=0, seconds=3.04,
                  requests=(55, 1), assertions=(164, 2), newman_log=FAILED_NEWMAN_LOG)
    status, lines = run_summary(tmp_path, capsys, mypy=1, pytest=1, newman=1)
    assert status == 1
    # From the failures table on (as Newman prints it, coloured whatever --color says, and
    # shown without the colours); the passing part of the run stays in the log.
    assert lines[0] == "  #  failure         detail   "
    assert "waiting for the API on http://127.0.0.1:40000" not in lines
    assert '{"level": "ERROR", "message": "boom"}' in lines
    assert lines[-1] == (
        "test.sh: ruff ok | mypy FAILED (exit 1) | pytest 7 passed, 2 failed, 1 errors, "
        "0 skipped in 3.0s (exit 1) | newman 55 requests (1 failed), 164 assertions "
        f"(2 failed) (exit 1) | FAILED: mypy, pytest, newman (Newman's full output: "
        f"{tmp_path / 'newman.log'})")


def test_missing_reports_are_failures_and_newmans_whole_output_is_shown(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Say the API never started: Newman never ran, so no table and no JSON export.
    (tmp_path / "newman.log").write_text("the API exited while starting:\nbad setting\n")
    status, lines = run_summary(tmp_path, capsys, pytest=2, newman=1)
    assert status == 1
    assert lines[:2] == ["the API exited while starting:", "bad setting"]
    assert lines[-1].startswith(
        f"test.sh: ruff ok | mypy ok | pytest FAILED (exit 2, no report in "
        f"{tmp_path / 'pytest.xml'}) | newman FAILED (exit 1, no report in "
        f"{tmp_path / 'newman.json'}) | FAILED: pytest, newman")


def test_a_nonzero_status_fails_a_step_whatever_its_report_says(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_reports(tmp_path, tests=5, failures=0, errors=0, skipped=0, seconds=1,
                  requests=(55, 0), assertions=(164, 0))
    status, lines = run_summary(tmp_path, capsys, ruff=1)
    assert status == 1 and lines[-1].endswith("| FAILED: ruff")


def test_test_sh_ends_with_the_summary_and_keeps_pytest_arguments() -> None:
    script = (ROOT / "scripts" / "test.sh").read_text()
    assert '--junitxml="$logs/pytest.xml" "$@"' in script
    assert script.rstrip().splitlines()[-2].startswith("exec .venv/bin/python "
                                                       "scripts/run_summary.py")
