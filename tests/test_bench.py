"""scripts/bench.py keeps working: its quick mode runs once, end to end, on the test
database. (Speed is judged by the full run's ratios in docs/benchmarks.md, never here.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_bench_measures_every_row_and_writes_the_report(mongo_url: str,
                                                              tmp_path: Path) -> None:
    output = tmp_path / "benchmarks.md"
    run = subprocess.run(
        [sys.executable, "scripts/bench.py", "--quick", "--mongodb-url", mongo_url,
         "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    report = output.read_text()
    assert "## Machine" in report and "logical cores" in report and "Python 3." in report
    rows = [line for line in report.splitlines() if line.startswith("| ")][2:]
    measures = " ".join(rows)
    for measure in ("CPU per request: floor", "CPU per request: POST /org/get",
                    "CPU per request: GET /admin/me", "CPU per request: record read by id",
                    "GET /health, no database on either side",
                    "the floor doing the record read's reads",
                    "latency record read by id: 10 vs 200 orgs",
                    "latency POST /org/get: 10 vs 200 orgs", "API RSS after 200 orgs",
                    "/health p99 with 8 logins", "rename of an org with 1,000 records",
                    "document-by-document copy"):
        assert measure in measures, measure
    # Every row has a figure (or says plainly why not) and each target a verdict.
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[1], row
        if cells[2] and cells[2] != "report":
            assert cells[3] in {"met", "NOT met (see notes)"}, row
    # The table is printed too, with the progress bars on stderr.
    assert "| measure | result | target | verdict |" in run.stdout
    assert "%|" in run.stderr
