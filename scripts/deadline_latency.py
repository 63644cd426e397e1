"""How long the part of a tenant request that TENANT_REQUEST_TIMEOUT_MS bounds takes under
load, and how many requests shorter deadlines would cut off (docs/lifecycle.md).

In one process: the app (httpx ASGITransport, no network) on an embedded SecantusDB in a
temporary folder, as `scripts/serve.sh` runs it without MONGODB_URL. For each number of
concurrent clients it times, per request, the span the deadline covers: from the tenant
lookup to the end of the record write (POST /org/records/{kind}), or the tenant lookup that
also fetches the record (GET /org/records/{kind}/{id}). Then it runs the same load with each
shorter deadline configured and counts the 503s it really answers.

    .venv/bin/python scripts/deadline_latency.py [--requests 2000] [--clients 1,8,32]
        [--deadlines 1000,1500]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("JWT_SECRET_KEY", secrets.token_urlsafe(48))

from org_service import deps, tenancy  # noqa: E402
from org_service.config import Settings  # noqa: E402
from org_service.embedded import EmbeddedMongo  # noqa: E402
from org_service.main import create_app  # noqa: E402

spans: list[float] = []  # seconds the deadline covered, one per request of the running cell


def measure_spans() -> None:
    """Record the covered span of each request: writes from the deadline's start to the end
    of the write, reads the tenant lookup (the record comes in the same round trip)."""
    window = tenancy.TenantContext.write_window
    resolve = deps.resolve_tenant

    # Cut-off requests too (in `finally`): their span is what a longer deadline would allow.
    @contextlib.contextmanager
    def timed_window(self: tenancy.TenantContext) -> Iterator[None]:
        try:
            with window(self):
                yield
        finally:
            started = self.write_deadline - self.timeout_s  # type: ignore[attr-defined]
            spans.append(time.monotonic() - started)

    async def timed_resolve(request: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            tenant = await resolve(request, *args, **kwargs)
        except Exception:
            spans.append(time.monotonic() - started)  # a write cut off before its window
            raise
        if request.method == "GET":
            spans.append(time.monotonic() - started)
        return tenant

    tenancy.TenantContext.write_window = timed_window  # type: ignore[method-assign,assignment]
    tenancy.TenantContext.timeout_s = 0.0  # type: ignore[attr-defined]
    deps.resolve_tenant = timed_resolve


async def cell(http: httpx.AsyncClient, auth: dict[str, str], op: str, ids: list[str],
               clients: int, total: int) -> dict[int, int]:
    statuses: dict[int, int] = {}
    left = iter(range(total))

    async def worker() -> None:
        for n in left:
            if op == "write":
                response = await http.post("/org/records/bench", json={"n": n, "pad": "x" * 200},
                                           headers=auth)
            else:
                response = await http.get(f"/org/records/bench/{ids[n % len(ids)]}", headers=auth)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    await asyncio.gather(*(worker() for _ in range(clients)))
    return statuses


async def tenant(http: httpx.AsyncClient) -> dict[str, str]:
    email = f"a{secrets.token_hex(4)}@example.com"
    created = await http.post("/org/create", json={
        "organization_name": f"Deadline {secrets.token_hex(3)}", "email": email,
        "password": "deadline-pw-1"})
    created.raise_for_status()
    login = await http.post("/admin/login", json={"email": email, "password": "deadline-pw-1"})
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def run(settings: Settings, args: argparse.Namespace) -> None:
    levels = [int(c) for c in args.clients.split(",")]
    print(f"{args.requests} requests per cell; covered span in ms; >X: share of requests "
          "whose span exceeded X ms")
    print("| deadline | op | clients | p50 | p99 | p99.9 | max | >1000 | >1500 | >3000 "
          "| statuses |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    auth: dict[str, str] = {}
    ids: list[str] = []
    for deadline in [60_000, *args.deadlines]:
        app = create_app(settings.model_copy(update={"TENANT_REQUEST_TIMEOUT_MS": deadline}))
        logging.getLogger("org_service.access").setLevel(logging.WARNING)
        tenancy.TenantContext.timeout_s = deadline / 1000  # type: ignore[attr-defined]
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=("198.51.100.1", 5000))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                if not ids:  # once, with the long deadline; the token is good in every app
                    auth.update(await tenant(http))
                    ids += [(await http.post("/org/records/bench", json={"n": n}, headers=auth))
                            .json()["id"] for n in range(100)]
                # Shorter deadlines: the heaviest load only, counting the 503s it answers.
                for op in ("write", "read"):
                    for clients in levels if deadline == 60_000 else levels[-1:]:
                        spans.clear()
                        statuses = await cell(http, auth, op, ids, clients, args.requests)
                        over = [sum(s * 1000 > x for s in spans) / len(spans) * 100
                                for x in (1000, 1500, 3000)]
                        print(f"| {deadline} | {op} | {clients} | {pct(spans, .5):.1f} | "
                              f"{pct(spans, .99):.1f} | {pct(spans, .999):.1f} | "
                              f"{max(spans) * 1000:.1f} | "
                              + " | ".join(f"{o:.2f}%" for o in over)
                              + f" | {dict(sorted(statuses.items()))} |", flush=True)
        print(f"load average: {os.getloadavg()}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--deadlines", default="1000,1500",
                        type=lambda s: [int(d) for d in s.split(",") if d])
    args = parser.parse_args()
    measure_spans()
    with tempfile.TemporaryDirectory(prefix="deadline-") as folder:
        server = EmbeddedMongo(str(Path(folder) / "db")).start()
        try:
            settings = Settings(MONGODB_URL=server.url,  # type: ignore[call-arg]
                                MASTER_DB_NAME="deadline_latency", BCRYPT_ROUNDS=4,
                                MAX_TENANT_REQUESTS_IN_FLIGHT=0)
            asyncio.run(run(settings, args))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
