"""Side-by-side benchmarks of org_service, written to docs/benchmarks.md.

Every comparison runs in one process tree on one database, its two sides interleaved in
rounds, so a noisy machine moves both sides alike and the ratios hold. Each API (and the
floor app) is its own uvicorn process, so its CPU time and memory can be read on their own.

    .venv/bin/python scripts/bench.py            # full run (many minutes on SecantusDB)
    .venv/bin/python scripts/bench.py --quick    # small run, under a minute (the test suite)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import importlib.metadata
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_backup import backup_section  # noqa: E402  (scripts/ is this script's folder)
from bench_overload import overload  # noqa: E402

from org_service.embedded import EmbeddedMongo, die_with_parent, free_port  # noqa: E402
from org_service.members.repository import MemberRepository  # noqa: E402
from org_service.naming import collection_for, slug_of  # noqa: E402
from org_service.organizations.repository import (  # noqa: E402
    OrganizationRepository,
    TenantCollections,
)
from org_service.organizations.schemas import ACTIVE  # noqa: E402
from org_service.security import PasswordHasher  # noqa: E402

PASSWORD = "bench-password-1"
LOGIN_ROUNDS = 12
CPU_TARGET = 1.3  # issue 5: a record read by id costs at most this many floors
# Issue 18: the record read is judged against the floor doing the same reads; a member's
# record read (role and policy checked in the same aggregate) against the owner's.
MEMBER_READ_TARGET = 1.05
# Issue 19: with the session check added to the tenant lookup, the record read costs at
# most 1.05x the members issue's figure, in find_one floors: 1.57x in its full run
# (the docs/benchmarks.md of commit aa66fe3).
MEMBERS_ISSUE_RECORD_READ = 1.57
SESSION_CHECK_TARGET = 1.05
_CPU_COMMON = (
    "the API does more per request than the floor, each piece on purpose: the observability "
    "middleware (request id, one JSON log line, two Prometheus samples), the database "
    "latency listener (PyMongo builds an event per command, then a histogram sample), "
    "FastAPI trying the app's routes in turn (the record read is the 16th of 27; the floor "
    "has 3), resolving "
    "the route's dependencies and validating its parameters, and the error-rendering "
    "middleware. The table's /health row shows that stack alone, with no database on either "
    "side.")
LISTING_ON_SECANTUSDB = (
    "No target: the issue asks a listing to stay flat as organizations grow (the rows "
    "above), and here the tenant's own records grow. SecantusDB reads every document that "
    "matches a find's filter before it sorts and applies the limit, whatever index serves "
    "the filter (its explain shows an index scan on kind, then a sort; a first page of 51 out of "
    "2,000 records took about 90 ms, and a find with no filter and no sort 33 ms), so on it "
    "a page costs in proportion to the kind's size. MongoDB walks the kind_created index "
    "in order and stops after the page.")
CPU_GAPS = {
    "POST /org/get": "It is a POST whose body is read, checked by the strict JSON parser and "
    "validated (name rules, slug), where the floor is a bodiless GET; and " + _CPU_COMMON,
    "GET /admin/me": "One aggregate reads the admin (so a password change revokes tokens at "
    "once) and its organization (so a deleted one stops at once) in one round trip, a "
    "little more than the floor's find_one; and " + _CPU_COMMON,
    "record read by id": "The record rides in the tenant lookup's aggregate (admin, "
    "organization and record in one round trip), so the database sees one command, as for "
    "the floor, but a heavier one: the row under it runs that aggregate in the floor app, "
    "which splits this ratio into what is read (SecantusDB answers the joins more slowly "
    "than a find_one, and on this machine a longer wait costs CPU: see Machine) and the API "
    "around the reads, and says how much of the target those reads leave. Whenever that is "
    "less than the API's stack costs on its own (the /health row, in floors), no API that "
    "keeps this stack can meet the target on this machine. Around the reads, " + _CPU_COMMON,
}


@dataclass(frozen=True)
class Size:
    small_orgs: int = 10
    large_orgs: int = 10_000
    few_records: int = 50  # one page of a listing
    many_records: int = 2_000
    rename_records: int = 100_000
    cpu_rounds: int = 7
    cpu_requests: int = 300
    latency_rounds: int = 6
    latency_requests: int = 200
    health_requests: int = 400
    health_rounds: int = 3
    concurrent_logins: int = 8
    flood_creators: int = 50
    flood_logins: int = 20
    rss_reads: int = 10_000
    copy_sample: int = 5_000
    few_members: int = 10
    many_members: int = 5_000
    # Issue 20: backup and restore of one organization, against its export.
    backup_small_records: int = 10_000
    backup_records: int = 100_000


QUICK = Size(large_orgs=200, many_records=500, rename_records=1_000, cpu_rounds=2, cpu_requests=50,
             latency_rounds=2, latency_requests=30, health_requests=50, health_rounds=1,
             rss_reads=200, flood_creators=16, flood_logins=3, many_members=500,
             backup_small_records=500, backup_records=2_000)


def baseline_name(checkout: Path) -> str:
    """The commit a baseline checkout is at, as `git describe` would name it briefly."""
    done = subprocess.run(["git", "-C", str(checkout), "log", "-1", "--format=%h"],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() or checkout.name


SECTIONS = ("cpu", "latency", "records", "members", "memory", "logins", "rename", "flood",
            "overload", "backup")


@dataclass
class Row:
    measure: str
    result: str
    target: str
    verdict: str


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, measure: str, result: str, target: str = "", verdict: str = "",
            gap: str = "") -> None:
        """A row; `gap` explains a missed target and goes to the notes only when missed."""
        self.rows.append(Row(measure, result, target, verdict))
        if verdict.startswith("NOT met") and gap:
            self.notes.append(f"**{measure}** ({result}): {gap}")
        tqdm.write(f"  {measure}: {result} {target} {verdict}".rstrip())

    def table(self) -> str:
        lines = ["| measure | result | target | verdict |", "| --- | --- | --- | --- |"]
        lines += [f"| {r.measure} | {r.result} | {r.target} | {r.verdict} |" for r in self.rows]
        return "\n".join(lines)


def seconds(times: list[float]) -> str:
    return " / ".join(f"{t:.2f}" for t in times) + " s"


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met (see notes)"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cpu_clock_of(pid: int) -> int | None:
    """The POSIX CPU-time clock of another process (clock_getcpuclockid): its user+system
    time in nanoseconds, exited threads included; None where the C library lacks it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        clock = ctypes.c_int()
        if libc.clock_getcpuclockid(pid, ctypes.byref(clock)) != 0:
            return None
        time.clock_gettime(clock.value)
    except (AttributeError, OSError):
        return None
    return clock.value


class Server:
    """A uvicorn process on a free port, stopped on exit, and killed with this script when
    that dies without one (a SIGKILL or an interrupted run leaves no server behind)."""

    def __init__(self, name: str, app: str, env: dict[str, str], workdir: Path,
                 app_dir: Path | None = None, loop: str = "asyncio") -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"{name}.log"
        command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1",
                   "--port", str(self.port), "--no-access-log", "--log-level", "warning",
                   # As scripts/serve.sh and the Dockerfile run it (see docs/benchmarks.md,
                   # "Overload": uvloop starves some connections under a burst).
                   "--loop", loop]
        if app_dir is not None:
            command += ["--app-dir", str(app_dir)]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(command, cwd=workdir, env={**os.environ, **env},
                                            stdout=out, stderr=subprocess.STDOUT,
                                            preexec_fn=die_with_parent)
        self.ps = psutil.Process(self.process.pid)
        self.cpu_clock = cpu_clock_of(self.process.pid)

    async def wait_ready(self, path: str, within: float = 120) -> None:
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as http:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited:\n{self.log.read_text()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(path)).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} never became ready:\n{self.log.read_text()}")
                await asyncio.sleep(0.2)

    def cpu_seconds(self) -> float:
        """User+system CPU time the server has used, from its CPU-time clock (nanoseconds)
        where there is one: the process times psutil reads come in scheduler ticks, 10 ms
        here, which would round a 300-request round to some 33 µs a request."""
        if self.cpu_clock is not None:
            return time.clock_gettime(self.cpu_clock)
        times = self.ps.cpu_times()
        return times.user + times.system

    def rss_mb(self) -> float:
        return self.ps.memory_info().rss / 2**20

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Tenant:
    """An organization created through the API, with its admin's token and one record."""

    name: str
    token: str
    record_path: str | None = None

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def create_via_api(http: httpx.AsyncClient, name: str, email: str) -> Tenant:
    created = await http.post("/org/create", json={
        "organization_name": name, "email": email, "password": PASSWORD})
    created.raise_for_status()
    login = await http.post("/admin/login", json={"email": email, "password": PASSWORD})
    login.raise_for_status()
    return Tenant(name, login.json()["access_token"])


async def add_employee(http: httpx.AsyncClient, owner: Tenant, email: str) -> Tenant:
    """An employee of the owner's organization, logged in at /auth/login."""
    added = await http.post("/org/members", headers=owner.auth, json={
        "email": email, "password": PASSWORD, "name": "Bench Employee", "role": "employee"})
    added.raise_for_status()
    login = await http.post("/auth/login", json={"email": email, "password": PASSWORD})
    login.raise_for_status()
    return Tenant(owner.name, login.json()["access_token"], owner.record_path)


async def seed_members(db: Any, owner_email: str, count: int, password_hash: str) -> None:
    """Members of the owner's organization written directly, as the API writes them."""
    members = MemberRepository(db)
    owner = await members.get_by_email(owner_email)
    assert owner is not None
    roles = ("employee", "employee", "employee", "manager")
    for start in range(0, count, SEED_BATCH):
        await asyncio.gather(*(members.insert(
            email=f"m{n}-{owner_email}", password_hash=password_hash,
            organization_id=owner["organization_id"], role=roles[n % 4],
            name=f"Member {n:05d}", department=f"dept{n % 20}")
            for n in range(start, min(start + SEED_BATCH, count))))


async def add_record(http: httpx.AsyncClient, tenant: Tenant) -> None:
    created = await http.post("/org/records/bench", json={"title": "benchmark", "n": 1},
                              headers=tenant.auth)
    created.raise_for_status()
    tenant.record_path = f"/org/records/bench/{created.json()['id']}"


SEED_BATCH = 1000  # record documents per insert_many of seed_records


async def seed_records(collection: Any, count: int, progress: tqdm | None = None) -> None:
    """Record documents of kind `bench` written straight into a tenant collection, shaped
    as the API writes them, SEED_BATCH per insert (and per step of `progress`)."""
    now = datetime.now(UTC)
    for start in range(0, count, SEED_BATCH):
        await collection.insert_many([
            {"kind": "bench", "data": {"n": n, "title": f"record {n}"}, "version": 1,
             "created_at": now, "updated_at": now}
            for n in range(start, min(start + SEED_BATCH, count))])
        if progress is not None:
            progress.update()


async def seed_organizations(db: Any, count: int, password_hash: str, prefix: str,
                             progress: tqdm) -> list[str]:
    """Organizations and admins written directly (no bcrypt per org), through the
    repositories so the documents are exactly what the API writes."""
    organizations, admins = OrganizationRepository(db), MemberRepository(db)
    gate = asyncio.Semaphore(16)
    names = [f"{prefix} {i:05d}" for i in range(count)]

    async def one(index: int, name: str) -> None:
        async with gate:
            slug = slug_of(name)
            org = await organizations.insert(name=name, slug=slug,
                                             collection_name=collection_for(slug), state=ACTIVE)
            await admins.insert(email=f"admin{index}@{slug.replace('_', '-')}.example.com",
                                password_hash=password_hash, organization_id=org["_id"])
            progress.update()

    await asyncio.gather(*(one(i, name) for i, name in enumerate(names)))
    return names


async def lifecycle_quiet(db: Any, within: float = 300) -> None:
    """Until no create, rename or delete of this API is in flight or settling."""
    deadline = time.monotonic() + within
    while await db["lifecycle_ops"].count_documents({"phase": {"$ne": "done"}}):
        if time.monotonic() > deadline:
            raise RuntimeError("a lifecycle operation never settled")
        await asyncio.sleep(0.2)


async def run_batch(http: httpx.AsyncClient, send: Callable[[], Awaitable[httpx.Response]],
                    count: int, concurrency: int = 1) -> list[float]:
    """Latencies in ms of `count` requests, `concurrency` at a time; any non-2xx aborts."""
    latencies: list[float] = []
    queue = iter(range(count))

    async def worker() -> None:
        for _ in queue:
            started = time.perf_counter()
            response = await send()
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code >= 300:
                raise RuntimeError(f"{response.request.url}: {response.status_code} "
                                   f"{response.text[:200]}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


class Bench:
    def __init__(self, size: Size, mongo_url: str, workdir: Path, quick: bool,
                 db_pid: int | None = None, only: frozenset[str] = frozenset(),
                 baseline: Path | None = None) -> None:
        self.size = size
        self.only = only
        self.baseline = baseline
        self.baseline_name = baseline_name(baseline) if baseline is not None else ""
        self.db_clock = cpu_clock_of(db_pid) if db_pid is not None else None
        self.quick = quick
        self.mongo_url = mongo_url
        self.workdir = workdir
        self.report = Report()
        self.secret = secrets.token_urlsafe(48)
        self.tag = secrets.token_hex(3)
        self.client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url, tz_aware=True)
        self.small_db = f"bench_small_{self.tag}"
        self.large_db = f"bench_large_{self.tag}"
        self.flood_db = f"bench_flood_{self.tag}"
        self.servers: list[Server] = []

    def env(self, db: str) -> dict[str, str]:
        # The longest timeout the settings allow: on SecantusDB renameCollection copies the
        # data, and a 100,000-record rename outlasts the default 10 s socket timeout.
        return {"MONGODB_URL": self.mongo_url, "MASTER_DB_NAME": db,
                "JWT_SECRET_KEY": self.secret, "BCRYPT_ROUNDS": str(LOGIN_ROUNDS),
                "MONGODB_TIMEOUT_MS": "60000"}

    async def run(self) -> Report:
        try:
            await self._run()
        finally:
            for server in self.servers:
                server.stop()
            try:
                for db in (self.small_db, self.large_db, self.flood_db):
                    await self.client.drop_database(db)
            except PyMongoError as exc:
                # The measurements are done: a database that went away meanwhile (it once
                # did, after the shed-storm row) must not throw them away.
                tqdm.write(f"could not drop the benchmark databases: {exc}")
            await self.client.close()
        return self.report

    async def _run(self) -> None:
        size = self.size
        self.api_small = Server("api_small", "org_service.main:app", self.env(self.small_db),
                                self.workdir)
        self.api_large = Server("api_large", "org_service.main:app", self.env(self.large_db),
                                self.workdir)
        self.floor = Server("floor", "bench_floor:app", self.env(self.small_db), self.workdir,
                            app_dir=ROOT / "scripts")
        self.servers = [self.api_small, self.api_large, self.floor]
        self.api_baseline: Server | None = None
        if self.baseline is not None:
            # An earlier commit's API on the same database: what a change costs, side by
            # side in one run. It takes the tokens this API issues.
            self.api_baseline = Server(
                "api_baseline", "org_service.main:app",
                {**self.env(self.small_db), "PYTHONPATH": str(self.baseline)}, self.workdir,
                app_dir=self.baseline)
            self.servers.append(self.api_baseline)
            await self.api_baseline.wait_ready("/ready")
        await asyncio.gather(self.api_small.wait_ready("/ready"),
                             self.api_large.wait_ready("/ready"),
                             self.floor.wait_ready("/health"))
        limits = httpx.Limits(max_connections=32)
        async with (httpx.AsyncClient(base_url=self.api_small.url, timeout=120,
                                      limits=limits) as small,
                    httpx.AsyncClient(base_url=self.api_large.url, timeout=120,
                                      limits=limits) as large,
                    httpx.AsyncClient(base_url=self.floor.url, timeout=120,
                                      limits=limits) as floor):
            self.small_http, self.large_http, self.floor_http = small, large, floor
            password_hash = await PasswordHasher(LOGIN_ROUNDS).hash(PASSWORD)
            with tqdm(total=size.small_orgs - 1 + size.large_orgs - 1, desc="seed orgs",
                      unit="org") as progress:
                self.small_names = await seed_organizations(
                    self.client[self.small_db], size.small_orgs - 1, password_hash,
                    "Bench Small", progress)
                self.large_names = await seed_organizations(
                    self.client[self.large_db], size.large_orgs - 1, password_hash,
                    "Bench Large", progress)
            # One organization on each side made through the API: the probe every read uses.
            self.probe_small = await create_via_api(small, "Bench Probe", "probe@bench.example")
            self.probe_large = await create_via_api(large, "Bench Probe", "probe@bench.example")
            await add_record(small, self.probe_small)
            await add_record(large, self.probe_large)
            self.employee_small = await add_employee(small, self.probe_small,
                                                     "employee@bench.example")
            self.password_hash = password_hash
            sections = {
                "cpu": self.cpu_per_request,
                "latency": self.latency_by_organization_count,
                "records": self.latency_by_record_count,
                "members": self.latency_by_member_count,
                "memory": self.memory_after_reading_every_organization,
                "logins": self.health_during_logins,
                "rename": self.rename,
                "flood": self.during_create_flood,
                "overload": lambda: overload(self, Server, self.db_cpu_seconds),
                "backup": lambda: backup_section(self, seed_records, create_via_api,
                                                 collection_for, slug_of, SEED_BATCH),
            }
            for name, section in sections.items():
                if not self.only or name in self.only:
                    await section()

    def db_cpu_seconds(self) -> float | None:
        """The database server's CPU time, when it is a process of this run."""
        return time.clock_gettime(self.db_clock) if self.db_clock is not None else None

    async def cpu_per_request(self) -> None:
        size, tenant = self.size, self.probe_small
        small, floor = self.small_http, self.floor_http
        cases: dict[str, tuple[Server, Callable[[], Awaitable[httpx.Response]]]] = {
            "floor": (self.floor, lambda: floor.get("/floor", headers=tenant.auth)),
            "floor, driver defaults": (self.floor, lambda: floor.get("/floor/bare",
                                                                     headers=tenant.auth)),
            "POST /org/get": (self.api_small, lambda: small.post(
                "/org/get", json={"organization_name": tenant.name})),
            "GET /admin/me": (self.api_small, lambda: small.get("/admin/me",
                                                                headers=tenant.auth)),
            "record read by id": (self.api_small, lambda: small.get(str(tenant.record_path),
                                                                    headers=tenant.auth)),
            "record read by id, an employee": (self.api_small, lambda: small.get(
                str(tenant.record_path), headers=self.employee_small.auth)),
            "floor, the record read's reads": (self.floor, lambda: floor.get(
                "/floor/tenant-read" + str(tenant.record_path).removeprefix("/org/records"),
                params={"collection": collection_for(slug_of(tenant.name))},
                headers=tenant.auth)),
            # No database on either side: what the API's own stack costs per request.
            "GET /health, floor": (self.floor, lambda: floor.get("/health")),
            "GET /health": (self.api_small, lambda: small.get("/health")),
        }
        http_of = {self.api_small: small, self.floor: floor}
        if self.api_baseline is not None:
            baseline = httpx.AsyncClient(base_url=self.api_baseline.url, timeout=120,
                                         limits=httpx.Limits(max_connections=32))
            http_of[self.api_baseline] = baseline
            cases["record read by id, baseline"] = (self.api_baseline, lambda: baseline.get(
                str(tenant.record_path), headers=tenant.auth))
            cases["GET /admin/me, baseline"] = (self.api_baseline, lambda: baseline.get(
                "/admin/me", headers=tenant.auth))
        per_request: dict[str, list[float]] = {name: [] for name in cases}
        total = size.cpu_rounds * len(cases)
        for _ in tqdm(range(size.cpu_rounds), desc="CPU per request", unit="round",
                      total=size.cpu_rounds, postfix={"cases": total}):
            for name, (server, send) in cases.items():
                await run_batch(http_of[server], send, 10, 4)  # warm connections and caches
                before = server.cpu_seconds()
                await run_batch(http_of[server], send, size.cpu_requests, 4)
                per_request[name].append((server.cpu_seconds() - before) / size.cpu_requests)
        floor_ms = statistics.median(per_request.pop("floor")) * 1000
        bare_ms = statistics.median(per_request.pop("floor, driver defaults")) * 1000
        self.report.add("CPU per request: floor (JWT check + find_one)", f"{floor_ms:.3f} ms")
        self.report.add("… the same floor on a client with the driver's defaults (no timeouts)",
                        f"{bare_ms:.3f} ms = {bare_ms / floor_ms:.2f}× floor", "report", "")
        reads_ms = statistics.median(per_request.pop("floor, the record read's reads")) * 1000
        for name in ("POST /org/get", "GET /admin/me"):
            api_ms = statistics.median(per_request[name]) * 1000
            ratio = api_ms / floor_ms
            self.report.add(f"CPU per request: {name}", f"{api_ms:.3f} ms = {ratio:.2f}× floor "
                            f"({api_ms / bare_ms:.2f}× the driver-defaults floor)",
                            f"≤ {CPU_TARGET}× floor", verdict(ratio <= CPU_TARGET),
                            gap=CPU_GAPS[name])
        # Restated by issue 18: the record read against the floor doing the same reads (the
        # revocation and state checks of its one aggregate are required), the bare find_one
        # floor beside it.
        record_ms = statistics.median(per_request["record read by id"]) * 1000
        self.report.add("CPU per request: record read by id vs the floor doing the same reads",
                        f"{record_ms:.3f} ms = {record_ms / reads_ms:.2f}× the floor's "
                        f"/floor/tenant-read ({record_ms / floor_ms:.2f}× the find_one floor)",
                        f"≤ {CPU_TARGET}×", verdict(record_ms / reads_ms <= CPU_TARGET),
                        gap=CPU_GAPS["record read by id"])
        session_gap = ("The session check reads the member's `ended_sessions`, which the "
                       "tenant lookup reads anyway: no join, no round trip more. A gap is "
                       "what the token's extra claim and the check cost in Python.")
        if self.api_baseline is not None:
            await baseline.aclose()
            for name in ("record read by id", "GET /admin/me"):
                then_ms = statistics.median(per_request.pop(f"{name}, baseline")) * 1000
                now_ms = statistics.median(per_request[name]) * 1000
                self.report.add(f"CPU per request: {name} against the baseline checkout "
                                f"({self.baseline_name}), same run",
                                f"{now_ms:.3f} against {then_ms:.3f} ms = "
                                f"{now_ms / then_ms:.2f}×", f"≤ {SESSION_CHECK_TARGET}×",
                                verdict(now_ms / then_ms <= SESSION_CHECK_TARGET),
                                gap=session_gap)
        else:
            with_sessions = record_ms / floor_ms / MEMBERS_ISSUE_RECORD_READ
            self.report.add("CPU per request: record read by id, sessions checked, vs the "
                            "members issue's figure (in find_one floors, another run)",
                            f"{record_ms / floor_ms:.2f}× floor against "
                            f"{MEMBERS_ISSUE_RECORD_READ}× = {with_sessions:.2f}×",
                            f"≤ {SESSION_CHECK_TARGET}×",
                            verdict(with_sessions <= SESSION_CHECK_TARGET), gap=session_gap)
        member_ms = statistics.median(per_request["record read by id, an employee"]) * 1000
        self.report.add("CPU per request: an employee's record read vs the owner's",
                        f"{member_ms:.3f} against {record_ms:.3f} ms = "
                        f"{member_ms / record_ms:.2f}×", f"≤ {MEMBER_READ_TARGET}×",
                        verdict(member_ms / record_ms <= MEMBER_READ_TARGET),
                        gap="The role, the state and the kind's policy are read in the same "
                        "aggregate as the owner's; a gap means a member's read took another "
                        "round trip or a slower path.")
        # The same floor doing the record read's own reads: splits the find_one ratio into
        # what is read (one aggregate instead of a find_one) and the API around it, and
        # /health on both sides prices the API's stack alone, in floors: together they say
        # how much of the target is left once the reads are paid, and what the stack takes.
        reads = reads_ms / floor_ms
        record = statistics.median(per_request["record read by id"]) * 1000 / floor_ms
        self.report.add("… the floor doing the record read's reads (JWT check + the API's "
                        "tenant-lookup aggregate)",
                        f"{reads_ms:.3f} ms = {reads:.2f}× floor, which leaves "
                        f"{CPU_TARGET - reads:.2f}× of the {CPU_TARGET}× target for the API "
                        f"around these reads; the record read costs {record / reads:.2f}× this",
                        "report", "")
        floor_health = statistics.median(per_request["GET /health, floor"]) * 1000
        api_health = statistics.median(per_request["GET /health"]) * 1000
        stack_ms = api_health - floor_health
        self.report.add("… GET /health, no database on either side: API against the floor app",
                        f"{api_health:.3f} against {floor_health:.3f} ms: the API's own stack "
                        f"costs {stack_ms * 1000:.0f} µs a request = {stack_ms / floor_ms:.2f}× "
                        "floor", "report", "")

    async def latency_by_organization_count(self) -> None:
        await self.compare_latency(
            f"{self.size.small_orgs} vs {self.size.large_orgs:,} orgs",
            {"small": (self.small_http, self.probe_small),
             "large": (self.large_http, self.probe_large)},
            {"POST /org/get": lambda http, t: http.post(
                "/org/get", json={"organization_name": t.name}),
             "record read by id": lambda http, t: http.get(str(t.record_path),
                                                           headers=t.auth)},
            gap="Both sides run the same code and the same indexed single-document "
            "lookup; a p99 this small moves with scheduling on a shared machine, so "
            "check the median first and rerun before reading a trend into it.")

    async def latency_by_record_count(self) -> None:
        """Two organizations of one API, one with a page of records and one with many: a
        read that scans its tenant's collection shows here (it once did, on SecantusDB)."""
        size, http = self.size, self.small_http
        db = self.client[self.small_db]
        sides: dict[str, tuple[httpx.AsyncClient, Tenant]] = {}
        for side, count in (("small", size.few_records), ("large", size.many_records)):
            tenant = await create_via_api(http, f"Bench {count} Records",
                                          f"records{count}@bench.example")
            await seed_records(db[collection_for(slug_of(tenant.name))], count - 1)
            await add_record(http, tenant)
            sides[side] = (http, tenant)
        label = f"{size.few_records} vs {size.many_records:,} records in the tenant's collection"
        # One after the other: on SecantusDB the large side's listings load the server
        # enough to move the read's p99 when the two are interleaved.
        await self.compare_latency(
            label, sides, {"record read by id": lambda http, t: http.get(str(t.record_path),
                                                                         headers=t.auth)},
            gap="The read by id joins the record on its _id, an index read on any server; a "
            "median that grows with the collection means it stopped being one.")
        await self.compare_latency(
            label, sides, {"first page of a listing": lambda http, t: http.get(
                "/org/records/bench", params={"limit": size.few_records}, headers=t.auth)},
            reported=LISTING_ON_SECANTUSDB)

    async def latency_by_member_count(self) -> None:
        """Two organizations of one API, one with a few members and one with many: the
        directory's first page, and a filtered one, must not grow with the organization."""
        size, http = self.size, self.small_http
        db = self.client[self.small_db]
        sides: dict[str, tuple[httpx.AsyncClient, Tenant]] = {}
        for side, count in (("small", size.few_members), ("large", size.many_members)):
            email = f"members{count}@bench.example"
            owner = await create_via_api(http, f"Bench {count} Members", email)
            await seed_members(db, email, count - 1, self.password_hash)
            sides[side] = (http, owner)
        await self.compare_latency(
            f"{size.few_members} vs {size.many_members:,} members in an organization", sides,
            {"first page of the directory": lambda http, t: http.get(
                "/org/members", params={"limit": 50}, headers=t.auth),
             "directory filtered by role": lambda http, t: http.get(
                "/org/members", params={"limit": 50, "role": "manager"}, headers=t.auth)},
            median_only=True,
            gap="Each listing is an index walk (organization, then the filter, then _id) on "
            "MongoDB; SecantusDB reads every document matching a find's filter before it "
            "applies the limit, so there a page costs in proportion to the organization "
            "(see the records listing row).")

    async def compare_latency(
            self, label: str, sides: dict[str, tuple[httpx.AsyncClient, Tenant]],
            operations: dict[str, Callable[[httpx.AsyncClient, Tenant],
                                           Awaitable[httpx.Response]]], gap: str = "",
            reported: str | None = None, median_only: bool = False) -> None:
        """Each operation on the `small` and the `large` side, in alternating batches of
        sequential requests; median and p99 of large against small, within 1.2×. With
        `reported`, a note on what the figures say, they are reported without a target."""
        size = self.size
        latencies: dict[tuple[str, str], list[float]] = {}
        for _ in tqdm(range(size.latency_rounds), desc=f"latency {label}", unit="round"):
            for op_name, op in operations.items():
                for side, (http, tenant) in sides.items():
                    def send(http: httpx.AsyncClient = http, tenant: Tenant = tenant,
                             op: Any = op) -> Awaitable[httpx.Response]:
                        return op(http, tenant)
                    latencies.setdefault((op_name, side), []).extend(
                        await run_batch(http, send, size.latency_requests))
        for op_name in operations:
            small, large = latencies[(op_name, "small")], latencies[(op_name, "large")]
            median_ratio = statistics.median(large) / statistics.median(small)
            p99_ratio = percentile(large, 0.99) / percentile(small, 0.99)
            measure = f"latency {op_name}: {label}"
            result = (f"median {statistics.median(small):.2f} → "
                      f"{statistics.median(large):.2f} ms ({median_ratio:.2f}×); p99 "
                      f"{percentile(small, 0.99):.2f} → {percentile(large, 0.99):.2f} ms "
                      f"({p99_ratio:.2f}×)")
            if reported is not None:
                self.report.add(measure, result, "report")
                self.report.notes.append(f"**{measure}** ({result}): {reported}")
            elif median_only:
                self.report.add(measure, result, "median within 1.2×",
                                verdict(median_ratio <= 1.2), gap=gap)
            else:
                self.report.add(measure, result, "within 1.2×",
                                verdict(median_ratio <= 1.2 and p99_ratio <= 1.2), gap=gap)

    async def memory_after_reading_every_organization(self) -> None:
        names = [*self.large_names, self.probe_large.name][: self.size.rss_reads]
        http = self.large_http
        queue = iter(tqdm(names, desc="read every org once", unit="org"))

        async def worker() -> None:
            for name in queue:
                response = await http.post("/org/get", json={"organization_name": name})
                response.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(8)))
        rss = self.api_large.rss_mb()
        self.report.add(f"API RSS after {len(names):,} orgs each read once",
                        f"{rss:.1f} MB (the API with {self.size.small_orgs} orgs: "
                        f"{self.api_small.rss_mb():.1f} MB)", "≤ 150 MB", verdict(rss <= 150),
                        gap="The API keeps no per-organization state; compare the RSS of "
                        "the API with 10 organizations in the same row.")

    async def health_during_logins(self) -> None:
        size, http = self.size, self.small_http
        db = self.client[self.small_db]
        emails = [admin["email"] async for admin in db["members"].find(
            {"email": {"$ne": "probe@bench.example"}}).limit(size.concurrent_logins)]
        emails = (emails * size.concurrent_logins)[: size.concurrent_logins]
        idle: list[float] = []
        busy: list[float] = []
        logins = 0

        async def keep_logging_in(email: str, stop: asyncio.Event) -> None:
            nonlocal logins
            while not stop.is_set():
                response = await http.post("/admin/login",
                                           json={"email": email, "password": PASSWORD})
                response.raise_for_status()
                logins += 1

        def health() -> Awaitable[httpx.Response]:
            return http.get("/health")

        for _ in tqdm(range(size.health_rounds), desc="/health idle vs logins", unit="round"):
            idle += await run_batch(http, health, size.health_requests)
            stop = asyncio.Event()
            loops = [asyncio.create_task(keep_logging_in(email, stop)) for email in emails]
            await asyncio.sleep(0.3)  # let every login reach bcrypt
            busy += await run_batch(http, health, size.health_requests)
            stop.set()
            await asyncio.gather(*loops)
        ratio = percentile(busy, 0.99) / percentile(idle, 0.99)
        self.report.add(
            f"/health p99 with {size.concurrent_logins} logins ({LOGIN_ROUNDS} bcrypt rounds) "
            "in flight vs idle",
            f"{percentile(idle, 0.99):.2f} → {percentile(busy, 0.99):.2f} ms ({ratio:.2f}×; "
            f"{logins} logins completed meanwhile)", "≤ 3×", verdict(ratio <= 3),
            gap="bcrypt runs in at most cores - 1 threads (org_service/security.py); with "
            "fewer than 2 cores, or other processes taking them, the event loop still "
            "competes with the hashing for CPU.")

    async def during_create_flood(self) -> None:
        """/health and logins while public creates hammer an API of its own (its own
        database, default limits), each create from another client address (uvicorn trusts
        X-Forwarded-For from 127.0.0.1), so the per-address create throttle lets them all
        through to bcrypt: only the bounded hash queue, logins first, stands between them."""
        size = self.size
        server = Server("api_flood", "org_service.main:app", self.env(self.flood_db),
                        self.workdir)
        self.servers.append(server)
        await server.wait_ready("/ready")
        outcomes: dict[int, int] = {}
        async with (httpx.AsyncClient(base_url=server.url, timeout=120,
                                      limits=httpx.Limits(max_connections=16)) as http,
                    httpx.AsyncClient(base_url=server.url, timeout=120, limits=httpx.Limits(
                        max_connections=size.flood_creators)) as flood):
            await create_via_api(http, "Bench Flood Target", "flood@bench.example")
            sent = 0

            async def keep_creating(worker: int, stop: asyncio.Event) -> None:
                nonlocal sent
                while not stop.is_set():
                    sent += 1
                    response = await flood.post("/org/create", headers={
                        "X-Forwarded-For": f"10.{worker}.{sent // 250 % 250}.{sent % 250 + 1}"},
                        json={"organization_name": f"Flood {worker} {sent}", "password": PASSWORD,
                              "email": f"flood{worker}-{sent}@bench.example"})
                    outcomes[response.status_code] = outcomes.get(response.status_code, 0) + 1

            def health() -> Awaitable[httpx.Response]:
                return http.get("/health")

            def login() -> Awaitable[httpx.Response]:
                return http.post("/admin/login", json={"email": "flood@bench.example",
                                                       "password": PASSWORD})

            idle_health: list[float] = []
            busy_health: list[float] = []
            idle_login: list[float] = []
            busy_login: list[float] = []
            for _ in tqdm(range(size.health_rounds), desc="idle vs create flood", unit="round"):
                idle_health += await run_batch(http, health, size.health_requests)
                idle_login += await run_batch(http, login, size.flood_logins)
                stop = asyncio.Event()
                creators = [asyncio.create_task(keep_creating(n, stop))
                            for n in range(size.flood_creators)]
                await asyncio.sleep(0.5)  # let the hash queue fill
                busy_health += await run_batch(http, health, size.health_requests)
                busy_login += await run_batch(http, login, size.flood_logins)
                stop.set()
                await asyncio.gather(*creators)
        health_ratio = percentile(busy_health, 0.99) / percentile(idle_health, 0.99)
        login_ratio = statistics.median(busy_login) / statistics.median(idle_login)
        answered = ", ".join(f"{count} × {status}" for status, count in sorted(outcomes.items()))
        self.report.add(
            f"/health p99 and login latency with {size.flood_creators} concurrent public "
            f"creates ({LOGIN_ROUNDS} bcrypt rounds, each from its own address) vs idle",
            f"/health p99 {percentile(idle_health, 0.99):.2f} → "
            f"{percentile(busy_health, 0.99):.2f} ms ({health_ratio:.2f}×); login median "
            f"{statistics.median(idle_login):.0f} → {statistics.median(busy_login):.0f} ms "
            f"({login_ratio:.2f}×), every login 200; the creates meanwhile: {answered}",
            "≤ 3× each", verdict(health_ratio <= 3 and login_ratio <= 3),
            gap="A login waits for bcrypt only behind the hash running in each thread (it "
            "goes ahead of every queued create, org_service/security.py), but the flood "
            "keeps those threads busy, and its database work stays: every create answered "
            "201 writes a dozen journal and metadata documents, every refused one an audit "
            "entry, and a login's dozen round trips (throttle counters, admin, organization, "
            "audit) queue behind them on a server that serves some 1-2k operations a second. "
            "With 2 cores the event loop, the hashing and the database share the CPU.")

    async def rename(self) -> None:
        size, http = self.size, self.small_http
        db = self.client[self.small_db]
        tenant = await create_via_api(http, "Bench Rename", "rename@bench.example")
        collection = collection_for(slug_of(tenant.name))
        with tqdm(total=-(-size.rename_records // SEED_BATCH), desc="seed records",
                  unit="batch") as progress:
            await seed_records(db[collection], size.rename_records, progress)
        collections = TenantCollections(db)
        names = ["Bench Rename", "Bench Renamed"]
        api_times: list[float] = []
        bare_times: list[float] = []
        progress = tqdm(total=4, desc="rename API vs bare", unit="rename")
        current = tenant.name
        for step in range(2):
            target = names[(step + 1) % 2]
            started = time.perf_counter()
            response = await http.put("/org/update", headers=tenant.auth, json={
                "old_organization_name": current, "new_organization_name": target})
            api_times.append(time.perf_counter() - started)
            response.raise_for_status()
            current = target
            progress.update()
            # The rename settles in the background a fence after it answers: moving its
            # collection away meanwhile would race that settle (on SecantusDB the two
            # deadlocked, twice in one afternoon).
            await lifecycle_quiet(db)
            moved = collection_for(slug_of(current))
            started = time.perf_counter()
            await collections.rename(moved, "bench_bare_rename")
            await collections.rename("bench_bare_rename", moved)
            bare_times.append((time.perf_counter() - started) / 2)
            progress.update()
        progress.close()
        source = collection_for(slug_of(current))
        assert await db[source].count_documents({}) == size.rename_records
        # One insert per document is slow by nature (SecantusDB: tens to hundreds per
        # second): copy a sample and scale its time to the whole collection.
        sample = min(size.copy_sample, size.rename_records)
        started = time.perf_counter()
        with tqdm(total=sample, desc="document-by-document copy", unit="doc") as copying:
            async for document in db[source].find().limit(sample):
                await db["bench_copy"].insert_one(document)
                copying.update()
        copy_time = (time.perf_counter() - started) * size.rename_records / sample
        await db.drop_collection("bench_copy")
        # The fastest of each: SecantusDB stalls for a minute or two now and then (after
        # the seeding, mostly), and a stall must not decide the row for either side.
        api, bare = min(api_times), min(bare_times)
        self.report.add(f"rename of an org with {size.rename_records:,} records: API vs bare "
                        "renameCollection",
                        f"{api:.2f} s vs {bare:.2f} s ({api / bare:.2f}×; each side's "
                        f"fastest, of {seconds(api_times)} and {seconds(bare_times)})",
                        "≤ 1.2×",
                        verdict(api / bare <= 1.2),
                        gap="Besides renameCollection the API checks the token and the "
                        "tenant, makes sure the new name and collection are free, and "
                        "updates the organization document (and journals the steps where "
                        "the lifecycle is crash-safe); that fixed cost weighs most when "
                        "renameCollection itself is fast (small collections, or MongoDB, "
                        "where it is a metadata change).")
        copied = ("" if sample == size.rename_records
                  else f", the copy timed on {sample:,} documents and scaled")
        self.report.add("… API rename vs document-by-document copy",
                        f"{api:.2f} s vs {copy_time:.2f} s ({api / copy_time:.3f}×{copied})",
                        "report", "")


IDLE_WAIT_PROBE = """
import asyncio, time
run = asyncio.run
async def per_sleep(seconds, count=300):
    started = time.process_time()
    for _ in range(count):
        await asyncio.sleep(seconds)
    return (time.process_time() - started) / count * 1e6
async def main():
    print(await per_sleep(0), await per_sleep(0.002))
run(main())
"""


def idle_wait_cpu() -> tuple[float, float]:
    """CPU time, in µs, an event loop (asyncio's, as the API runs) is charged for one turn
    that does not wait and for one that waits 2 ms with nothing to do. A virtual machine
    may charge the waiting process for its wake-up; every CPU figure here includes that."""
    out = subprocess.run([sys.executable, "-c", IDLE_WAIT_PROBE], capture_output=True,
                         text=True, check=True, timeout=60).stdout.split()
    return float(out[0]), float(out[1])


def machine(mongo_description: str) -> list[str]:
    memory = psutil.virtual_memory().total / 2**30
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break

    busy, waited = idle_wait_cpu()

    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return [
        f"- CPU: {model}, {os.cpu_count()} logical cores "
        f"(load average at start {os.getloadavg()[0]:.2f})",
        f"- Memory: {memory:.1f} GiB",
        f"- OS: {platform.platform()}",
        f"- Python {platform.python_version()}; FastAPI {version('fastapi')}, "
        f"uvicorn {version('uvicorn')}, PyMongo {version('pymongo')}",
        f"- Database: {mongo_description}",
        "- An event loop's idle wait: a turn that waits 2 ms with nothing to do costs the "
        f"process {waited:.0f} µs of CPU, one that does not wait {busy:.0f} µs. A server "
        "pays the first whenever all its requests wait on the database, so every CPU figure "
        "below includes such waits, and a side whose reads take longer pays more of them.",
    ]


def render(report: Report, size: Size, quick: bool, mongo_description: str,
           seconds: float) -> str:
    mode = "quick (`--quick`)" if quick else "full"
    return "\n".join([
        "# Benchmarks",
        "",
        f"Produced by `scripts/bench.py` ({mode} run, {seconds:.0f} s) on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Every ratio compares two sides measured "
        "in the same run, on the same database, interleaved in rounds; absolute figures "
        "depend on the machine and mean little.",
        "",
        "## Machine",
        "",
        *machine(mongo_description),
        "",
        "## Results",
        "",
        report.table(),
        "",
        "## How each figure is measured",
        "",
        "- **CPU per request**: user+system CPU time of the server process (its POSIX "
        "CPU-time clock, in nanoseconds; psutil's tick-based times where there is none) over "
        f"{size.cpu_requests} requests (4 at a time), median of {size.cpu_rounds} rounds. "
        "The floor is `scripts/bench_floor.py`: a bare FastAPI endpoint doing the API's JWT "
        "check (its `TokenCodec`) and one `find_one`, in its own uvicorn process with the "
        "same flags, through a client built by the API's own `create_client` (the same "
        "timeouts and write concern; not the API's metrics listener). A socket timeout makes "
        "PyMongo's async client wrap every send and receive in `asyncio.wait_for`, some "
        "50-90 µs of CPU per command, and no production client runs without one; the same "
        "floor on a client with the driver's defaults is reported beside it. "
        "`POST /org/get` is public (one `find_one` by slug); `GET /admin/me` and the record "
        "read verify the token and read the admin and the organization (and the record) in "
        "one aggregate. The floor's `/floor/tenant-read` does the record read's reads in "
        "place of its `find_one`: the API's own tenant-lookup aggregate (its "
        "`MemberRepository`) with the record, the collection named in the query.",
        f"- **Latency by organization count**: two API processes on two master databases in "
        f"the same server, one with {size.small_orgs} organizations and one with "
        f"{size.large_orgs:,}, read in alternating batches of {size.latency_requests} "
        f"sequential requests ({size.latency_rounds} rounds). The extra organizations are "
        "written directly through the repositories (same documents, no bcrypt per org); "
        "their tenant collections are not created, since neither read touches them.",
        f"- **Latency by record count**: two organizations made through the API on one API "
        f"process, one with {size.few_records} records of a kind (a page of the listing) and "
        f"one with {size.many_records:,}, written straight into their collections but for the "
        "one made through the API that the read by id fetches; alternating batches as above, "
        "all the reads by id first, then the listings, which ask for one page of the first "
        "side's size on both.",
        "- **Rename**: an organization made through the API, its collection filled with "
        f"{size.rename_records:,} record documents; `PUT /org/update` renames alternate with "
        "a bare `renameCollection` there and back (timed as one rename), two of each; the "
        "fastest of each side is compared. The "
        "document-by-document copy reads the collection and inserts each document singly "
        f"(timed on the first {min(size.copy_sample, size.rename_records):,} documents and "
        "scaled linearly, which flatters the copy: inserts slow down as a collection grows).",
        f"- **/health under logins**: p99 of {size.health_requests} sequential `/health` "
        f"calls idle, then while {size.concurrent_logins} clients log in back to back "
        f"(bcrypt cost {LOGIN_ROUNDS}), {size.health_rounds} rounds.",
        f"- **Under a create flood**: an API process of its own, on a database of its own, "
        f"with the default limits; {size.flood_creators} clients send `POST /org/create` back "
        "to back, each from another address (`X-Forwarded-For`, which uvicorn trusts from "
        "127.0.0.1), so the per-address create throttle lets them through and only the "
        "bounded hash queue (logins first) stands between them and the logins. Per round: "
        f"{size.health_requests} sequential `/health` calls and {size.flood_logins} "
        "sequential logins idle, then the same during the flood; "
        f"{size.health_rounds} rounds. A login that is not 200 aborts the run.",
        "- The API processes run with `MONGODB_TIMEOUT_MS=60000` (socket timeout 120 s): on "
        "SecantusDB a 100,000-record rename outlasts the default 10 s socket timeout.",
        "- **Memory**: resident set size of the API process with the large database after "
        "each organization there was read once with `POST /org/get`.",
        "",
        "## Notes",
        "",
        *[f"- {note}" for note in report.notes],
        "",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--mongodb-url", default=None,
                        help="benchmark against this server (default: a fresh SecantusDB)")
    parser.add_argument("--note", action="append", default=[],
                        help="a note to add to the report (repeatable)")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="a checkout of an earlier commit (git worktree add DIR REV): its "
                             "API runs beside this one and the CPU section compares them")
    parser.add_argument("--only", action="append", default=[], choices=SECTIONS,
                        help="run only this section (repeatable); write the report elsewhere "
                             "with --output, docs/benchmarks.md is the full run's")
    args = parser.parse_args()
    size = QUICK if args.quick else Size()
    workdir = Path(tempfile.mkdtemp(prefix="org_service_bench_"))
    started = time.perf_counter()
    try:
        with database(args.mongodb_url, workdir) as (url, description, db_pid):
            report = asyncio.run(Bench(size, url, workdir, args.quick, db_pid,
                                       frozenset(args.only), args.baseline).run())
    except BaseException:
        print(f"benchmark failed; server logs kept in {workdir}", file=sys.stderr)
        raise
    shutil.rmtree(workdir, ignore_errors=True)
    report.notes += [
        "Measured on a machine shared with other work (see the load average above): the "
        "ratios hold because both sides of each row ran interleaved in the same minutes; "
        "absolute times do not transfer to other machines.",
        "CPU time is read from each server's CPU-time clock, which counts in nanoseconds "
        "(the process times come in 10 ms ticks: some 33 µs a request over a round of 300)."
        if cpu_clock_of(os.getpid()) is not None else
        "CPU time is read from the kernel in 10 ms ticks, so each round's per-request "
        "figure is good to about 10 ms / requests-per-round.",
        *args.note,
    ]
    seconds = time.perf_counter() - started
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(report, size, args.quick, description, seconds))
    print()
    print(report.table())
    print(f"\nwritten to {args.output} in {seconds:.0f} s")
    return 0


@contextlib.contextmanager
def database(url: str | None, workdir: Path) -> Iterator[tuple[str, str, int | None]]:
    if url:
        yield url, "the server at --mongodb-url", None
        return
    # A cache of 4 GB and an oplog kept one minute, as the test suite's server: at the 1 GB
    # default the 100,000-record rename's copy filled the cache and the server stalled
    # (twice for minutes in one afternoon, one run lost to a 120 s timeout).
    server = EmbeddedMongo(str(workdir / "db"), sync_on_commit=False, cache_size="4G",
                           oplog_retention_seconds=60).start()
    try:
        version = importlib.metadata.version("secantusdb")
        assert server.process is not None
        yield server.url, (
            f"SecantusDB {version} (MongoDB wire protocol on WiredTiger) on the same machine, "
            "without --sync-on-commit. Caveats: it serves roughly 1-2k operations/s and its "
            "renameCollection copies the data, so absolute times and the rename ratios "
            "reflect SecantusDB, not MongoDB (where renameCollection within a database is "
            "a metadata change)."), server.process.pid
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
