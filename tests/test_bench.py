"""scripts/bench.py keeps working: its quick mode runs once, end to end, on the test
database. (Speed is judged by the full run's ratios in docs/benchmarks.md, never here.)"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil

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
    assert "a turn that waits 2 ms with nothing to do costs the process" in report
    rows = [line for line in report.splitlines() if line.startswith("| ")][2:]
    measures = " ".join(rows)
    for measure in ("CPU per request: floor", "CPU per request: POST /org/get",
                    "CPU per request: GET /admin/me", "CPU per request: record read by id",
                    "GET /health, no database on either side",
                    "the floor doing the record read's reads",
                    "latency record read by id: 10 vs 200 orgs",
                    "latency POST /org/get: 10 vs 200 orgs",
                    "latency record read by id: 50 vs 500 records in the tenant's collection",
                    "latency first page of a listing: 50 vs 500 records",
                    "API RSS after 200 orgs",
                    "/health p99 with 8 logins", "rename of an org with 1,000 records",
                    "/health p99 and login latency with 16 concurrent public creates",
                    "document-by-document copy",
                    "CPU per request: record read by id vs the floor doing the same reads",
                    "CPU per request: an employee's record read vs the owner's",
                    "latency first page of the directory: 10 vs 500 members",
                    "latency directory filtered by role: 10 vs 500 members",
                    "backup of an org with 2,000 records vs GET /org/export",
                    "restore of an org with 2,000 records (--as)",
                    "peak memory of backup: 500 vs 2,000 records",
                    "peak memory of restore: 500 vs 2,000 records"):
        assert measure in measures, measure
    # The overload rows need wrk (a native load generator); without it they say so.
    if shutil.which("wrk"):
        for measure in ("overload GET /admin/me: goodput (2xx/s) and CPU per request",
                        "overload GET /admin/me: p99 by connections",
                        "overload: API RSS through 10 s of GET /admin/me"):
            assert measure in measures, measure
    else:
        assert "not run: wrk is not installed" in measures
    # The record read's CPU is split into its reads and the stack around them, in floors.
    assert "× floor, which leaves" in measures and "of the 1.3× target" in measures
    assert re.search(r"the API's own stack costs -?\d+ µs a request = -?\d+\.\d\d× floor",
                     measures)
    # Every row has a figure (or says plainly why not) and each target a verdict.
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[1], row
        if cells[2] and cells[2] != "report":
            assert cells[3] in {"met", "NOT met (see notes)"}, row
    # The table is printed too, with the progress bars on stderr.
    assert "| measure | result | target | verdict |" in run.stdout
    assert "%|" in run.stderr


def test_the_cpu_time_of_another_process_is_read_to_the_nanosecond() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    from bench import cpu_clock_of  # a script, not a package: imported from its folder

    # A child that burns CPU for a while, then sleeps: its clock stops where psutil's stops.
    child = subprocess.Popen([sys.executable, "-c", (
        "import time\nend = time.process_time() + 0.3\n"
        "while time.process_time() < end: pass\ntime.sleep(30)")])
    try:
        clock = cpu_clock_of(child.pid)
        assert clock is not None
        process = psutil.Process(child.pid)
        while time.clock_gettime(clock) < 0.3:
            time.sleep(0.05)
        time.sleep(0.2)
        burnt = time.clock_gettime(clock)
        ticks = process.cpu_times()
        assert abs(burnt - (ticks.user + ticks.system)) < 0.05
        assert burnt != round(burnt, 2)  # finer than the 10 ms ticks
    finally:
        child.kill()
        child.wait()


def test_a_killed_bench_leaves_no_server_behind(mongo_url: str, tmp_path: Path) -> None:
    # A parent that starts one of the bench's servers (the floor app), says its pid, then
    # waits; SIGKILLed, it runs no cleanup, so only the kernel can stop the server.
    parent = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        f"sys.path.insert(0, {str(ROOT / 'scripts')!r})\n"
        "from pathlib import Path\nfrom bench import Server\n"
        f"server = Server('floor', 'bench_floor:app', {{'MONGODB_URL': {mongo_url!r}, "
        f"'JWT_SECRET_KEY': 'x' * 64}}, Path({str(tmp_path)!r}), app_dir=Path("
        f"{str(ROOT / 'scripts')!r}))\n"
        "print(server.process.pid, flush=True)\ntime.sleep(120)")],
        stdout=subprocess.PIPE, text=True)
    with parent:
        assert parent.stdout is not None
        server = psutil.Process(int(parent.stdout.readline()))
        try:
            assert server.is_running() and "uvicorn" in server.cmdline()
            parent.kill()
            parent.wait()
            server.wait(timeout=10)  # psutil.TimeoutExpired if the server outlived the bench
        finally:
            parent.kill()
            if server.is_running():
                server.kill()
