"""The last line of scripts/test.sh: every step's outcome in one line, and its exit status.

    python scripts/run_summary.py --logs DIR --ruff N --mypy N --pytest N --newman N

N is each step's exit status. Counts come from the reports in DIR: pytest.xml (pytest's
JUnit XML) and newman.json (Newman's JSON export). Newman's full output, newman.log in DIR,
is shown only when Newman failed, from its failures table on. Exits 1 if any step failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

# The header row of the failures table of Newman's CLI reporter: "#  failure  detail".
# The table is coloured even under --color off: colours are dropped before the search.
ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")
NEWMAN_FAILURES = re.compile(r"^[ \t]*#[ \t]+failure[ \t]+detail[ \t]*$", re.MULTILINE)


@dataclass(frozen=True)
class Step:
    name: str
    ok: bool
    text: str


def tool_step(name: str, status: int) -> Step:
    return Step(name, status == 0, f"{name} {'ok' if status == 0 else f'FAILED (exit {status})'}")


def pytest_step(status: int, junit: Path) -> Step:
    try:
        root = ET.parse(junit).getroot()
    except (OSError, ET.ParseError):
        return Step("pytest", False, f"pytest FAILED (exit {status}, no report in {junit})")
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    counts = {key: sum(int(suite.get(key, 0)) for suite in suites)
              for key in ("tests", "failures", "errors", "skipped")}
    seconds = sum(float(suite.get("time", 0)) for suite in suites)
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    text = (f"pytest {passed} passed, {counts['failures']} failed, {counts['errors']} errors, "
            f"{counts['skipped']} skipped in {seconds:.1f}s")
    if status != 0:
        text += f" (exit {status})"
    return Step("pytest", status == 0, text)


def newman_step(status: int, export: Path) -> Step:
    try:
        stats = json.loads(export.read_text())["run"]["stats"]
        requests, assertions = stats["requests"], stats["assertions"]
    except (OSError, ValueError, KeyError, TypeError):
        return Step("newman", False, f"newman FAILED (exit {status}, no report in {export})")
    text = (f"newman {requests['total']} requests ({requests['failed']} failed), "
            f"{assertions['total']} assertions ({assertions['failed']} failed)")
    if status != 0:
        text += f" (exit {status})"
    return Step("newman", status == 0, text)


def newman_failures(log: str) -> str:
    """What of Newman's output to show on a failure: its failures table and what follows
    (postman.sh's API log tail), or all of it when Newman never got to the table."""
    log = ANSI_COLOUR.sub("", log)
    found = NEWMAN_FAILURES.search(log)
    return log[found.start():] if found else log


def summary_line(steps: list[Step], newman_log: Path) -> str:
    failed = [step.name for step in steps if not step.ok]
    verdict = "all passed" if not failed else f"FAILED: {', '.join(failed)}"
    if "newman" in failed:
        verdict += f" (Newman's full output: {newman_log})"
    return "test.sh: " + " | ".join(step.text for step in steps) + " | " + verdict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/run_summary.py")
    parser.add_argument("--logs", type=Path, required=True)
    for step in ("ruff", "mypy", "pytest", "newman"):
        parser.add_argument(f"--{step}", type=int, required=True, metavar="STATUS")
    args = parser.parse_args(argv)
    newman_log = args.logs / "newman.log"
    steps = [tool_step("ruff", args.ruff), tool_step("mypy", args.mypy),
             pytest_step(args.pytest, args.logs / "pytest.xml"),
             newman_step(args.newman, args.logs / "newman.json")]
    if args.newman != 0:
        # No log at all: the summary line says there is no report either.
        with contextlib.suppress(OSError):
            print(newman_failures(newman_log.read_text(errors="replace")).rstrip())
    print(summary_line(steps, newman_log))
    return 0 if all(step.ok for step in steps) else 1


if __name__ == "__main__":
    sys.exit(main())
