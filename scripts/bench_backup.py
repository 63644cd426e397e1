"""The backup section of scripts/bench.py (issue 20): `org-service backup` and `restore` of
an organization with 10,000 and with 100,000 records, each against `GET /org/export` of the
same organization, with the commands' peak memory.

The commands run as the operator runs them, each its own process (the console script's
`main`), so their time includes the interpreter's start and imports: measured alone
(`--help`) and shown beside. Peak memory is the process's own high-water mark of resident
memory (VmHWM, read by the process as it exits), so nothing is sampled and nothing is
missed. (getrusage of the child would not do: it counts the forked copy of this script
before the exec.)"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

EXPORT_TARGET = 1.5  # a backup costs at most this many exports
FLAT_TARGET = 1.15  # peak memory at 100,000 records within this of that at 10,000
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Run:
    seconds: float
    peak_mib: float


# `org-service ARGS`, noting its peak resident memory (kB) in PEAK_FILE as it exits.
WRAPPER = """
import atexit, os, sys
def note():
    with open('/proc/self/status') as status, open(os.environ['PEAK_FILE'], 'w') as out:
        out.write(next(l for l in status if l.startswith('VmHWM:')).split()[1])
atexit.register(note)
sys.argv[0] = 'org-service'
from org_service.cli import main
main()
"""


def command(env: dict[str, str], *args: str) -> Run:
    """Run `org-service ARGS` to its end: its wall time and peak memory."""
    peak = Path(env["BENCH_WORKDIR"]) / "peak"
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", WRAPPER, *args],
                          env={**env, "PEAK_FILE": str(peak)}, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"org-service {' '.join(args)}: exit {done.returncode}: "
                           f"{done.stderr}")
    return Run(seconds, int(peak.read_text()) / 1024)


async def export_seconds(http: Any, tenant: Any) -> float:
    started = time.perf_counter()
    async with http.stream("GET", "/org/export", headers=tenant.auth) as response:
        response.raise_for_status()
        async for _ in response.aiter_raw():
            pass
    return time.perf_counter() - started


async def backup_section(bench: Any, seed_records: Any, create_via_api: Any,
                         collection_for: Any, slug_of: Any, seed_batch: int) -> None:
    size, http, report = bench.size, bench.small_http, bench.report
    db = bench.client[bench.small_db]
    env = {**os.environ, **bench.env(bench.small_db), "BENCH_WORKDIR": str(bench.workdir),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    start_up = min([await asyncio.to_thread(command, env, "--help") for _ in range(3)],
                   key=lambda run: run.seconds)
    results: dict[int, tuple[float, Run, Run, int]] = {}
    for records in (size.backup_small_records, size.backup_records):
        name = f"Bench Backup {records}"
        tenant = await create_via_api(http, name, f"backup{records}@bench.example")
        with tqdm(total=-(-records // seed_batch), desc=f"seed {records:,} records",
                  unit="batch") as progress:
            await seed_records(db[collection_for(slug_of(name))], records, progress)
        file = bench.workdir / f"backup-{records}.osb"
        export = min([await export_seconds(http, tenant) for _ in range(2)])
        backup = min([await asyncio.to_thread(command, env, "backup", name, "--out", str(file))
                      for _ in range(2)], key=lambda run: run.seconds)
        restore = await asyncio.to_thread(
            command, env, "restore", str(file), "--as", f"Bench Restored {records}",
            "--skip-conflicting-members")
        results[records] = (export, backup, restore, file.stat().st_size)
    for records, (export, backup, restore, file_size) in results.items():
        # The command's own work: its wall time less the interpreter's start and imports,
        # which the API serving the export paid once, long before.
        work = backup.seconds - start_up.seconds
        ratio = work / export
        report.add(
            f"backup of an org with {records:,} records vs GET /org/export",
            f"{work:.2f} s vs {export:.2f} s = {ratio:.2f}× ({backup.seconds:.2f} s with the "
            f"command's start-up of {start_up.seconds:.2f} s; file "
            f"{file_size / 1024:,.0f} KiB)",
            f"≤ {EXPORT_TARGET}×", "met" if ratio <= EXPORT_TARGET else "NOT met (see notes)",
            gap="the backup reads the same records as the export (raw BSON, one cursor) "
                "and compresses them.")
        report.add(f"restore of an org with {records:,} records (--as)",
                   f"{restore.seconds - start_up.seconds:.2f} s ({restore.seconds:.2f} s with "
                   "start-up): verify pass, staging, indexes, rename into place")
    small, large = size.backup_small_records, size.backup_records
    for label, index in (("backup", 1), ("restore", 2)):
        low, high = results[small][index].peak_mib, results[large][index].peak_mib  # type: ignore[union-attr]
        report.add(f"peak memory of {label}: {small:,} vs {large:,} records",
                   f"{low:.0f} MiB vs {high:.0f} MiB (the command alone, --help: "
                   f"{start_up.peak_mib:.0f} MiB)", f"flat (≤ {FLAT_TARGET}×)",
                   "met" if high <= low * FLAT_TARGET else "NOT met (see notes)",
                   gap="memory grew with the organization's size.")
