"""Property test with real overlap: API calls on several organizations are in flight at
once (creates, renames, deletes, record writes, index builds), lifecycle operations are
paused between their steps and released in any order, and a "crash" abandons paused
operations to a second app instance that takes them over once their lease has run out
(the abandoned ones are released at the end and must then do nothing).

After every step: no tenant collection holds another organization's records, no
collection exists without an owner, no slug is claimed for an organization that neither
exists nor has an operation in flight. Once everything is released and settled: each
organization resolves to exactly one collection holding exactly the records acknowledged
to it, readable by its own admin and by no one else (see assert_consistent)."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from datetime import timedelta
from functools import partial
from typing import Any

from bson import ObjectId
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from tests.organizations.lifecycle_support import (
    create,
    delete,
    login_auth,
    rename,
    running,
    settled,
    wipe,
)

NAMES = ["Acme", "Beta", "Gamma Co", "Delta"]
OVERLAP_DB = "org_service_overlaps"
STEPS = ["journaled", "marked", "moved", "settling"]
# Pauses before any act on a collection: the lease is not extended yet, so a crash there
# hands the operation to the other instance after LEASE seconds.
CRASHABLE = {"journaled", "marked", "settling"}
LEASE = 1.0
# Where the operation a rule starts pauses (None: it runs through).
PAUSE = st.sampled_from([None, *STEPS])
ANSWERS = {200, 201, 202, 401, 403, 404, 409, 503}


Document = dict[str, Any]


class Pauses:
    """The checkpoint of every app instance: an armed step pauses the next operation that
    reaches it until the test releases it."""

    def __init__(self) -> None:
        self.armed: str | None = None
        self.paused: list[tuple[str, Document, asyncio.Event]] = []
        self.seen: Counter[str] = Counter()  # how often each step paused, for the record
        self.reached = asyncio.Event()  # set whenever an operation pauses

    async def __call__(self, step: str, op: Document) -> None:
        if step != self.armed:
            return
        self.armed = None
        self.seen[step] += 1
        self.reached.set()
        self.reached = asyncio.Event()
        released = asyncio.Event()
        self.paused.append((step, op, released))
        await released.wait()


def test_lifecycle_invariants_hold_while_operations_overlap(settings: Any) -> None:
    app_settings = settings.model_copy(update={
        "MASTER_DB_NAME": OVERLAP_DB, "TENANT_REQUEST_TIMEOUT_MS": 200,
        "LIFECYCLE_LEASE_SECONDS": LEASE, "LIFECYCLE_SWEEP_SECONDS": 3600,
        "MONGODB_TIMEOUT_MS": 2000, "INDEX_BUILD_WAIT_SECONDS": 0.2})
    loop = asyncio.new_event_loop()
    emails = itertools.count()
    pauses = Pauses()
    # Every app instance started stays up to the end: a "crashed" one keeps its paused
    # operations, released only when the run is over.
    contexts: list[Any] = []
    crashes: list[str] = []  # the step of every operation a crash abandoned

    def start_app() -> Any:
        context = running(app_settings)
        app = loop.run_until_complete(context.__aenter__())
        app.services.lifecycle.checkpoint = pauses
        # A create waits this long for a name held by a paused operation before its 409.
        app.services.lifecycle.claim_patience = timedelta(seconds=0.3)
        contexts.append(context)
        return app

    first = start_app()
    db = first.services.mongo.master

    class Overlaps(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.app = first
            loop.run_until_complete(wipe(db))
            # id -> {"name", "auth", "acked", "tried"}: organizations created, as last known
            self.orgs: dict[str, dict[str, Any]] = {}
            self.tasks: list[asyncio.Task[Any]] = []
            self.indexes = itertools.count()
            self.crashed = False
            self.abandoned: list[asyncio.Event] = []

        def run(self, coroutine: Any) -> Any:
            return loop.run_until_complete(coroutine)

        def launch(self, coroutine: Any) -> None:
            """Start an API call and let everything in flight run a little; when a pause
            is armed, until some operation has reached it (or the call has ended), so a
            slow machine pauses the same operations as a fast one."""
            task = loop.create_task(coroutine)
            self.tasks.append(task)

            async def go_on() -> None:
                await asyncio.sleep(0.05)
                if pauses.armed is not None:
                    reached = loop.create_task(pauses.reached.wait())
                    await asyncio.wait({task, reached}, timeout=3,
                                       return_when=asyncio.FIRST_COMPLETED)
                    reached.cancel()

            self.run(go_on())

        def pick(self, data: Any) -> str:
            # Drawn as a number: which organizations exist depends on timing, and what
            # Hypothesis draws must not.
            return sorted(self.orgs)[data.draw(st.integers(0, 9)) % len(self.orgs)]

        @initialize()
        def two_organizations(self) -> None:
            for name in NAMES[:2]:
                email = f"admin{next(emails)}@example.com"
                # Keyed: a create answered 503 may have happened; its retry replays it.
                created = self.run(retried(partial(
                    create, self.app.http, name, email, **{"Idempotency-Key": email})))
                assert created.status_code == 201, created.text
                self.orgs[created.json()["id"]] = {
                    "name": name, "acked": 0, "tried": 0,
                    "auth": self.run(login_auth(self.app.http, email))}

        # -- API calls, in flight together ----------------------------------------------

        @rule(name=st.sampled_from(NAMES))
        def create_organization(self, name: str) -> None:
            email = f"admin{next(emails)}@example.com"

            async def call() -> None:
                response = await create(self.app.http, name, email)
                assert response.status_code in (201, 409, 503), response.text
                if response.status_code == 201:
                    self.orgs[response.json()["id"]] = {
                        "name": name, "acked": 0, "tried": 0,
                        "auth": await login_auth(self.app.http, email)}

            self.launch(call())

        @rule(data=st.data(), new_name=st.sampled_from(NAMES), pause=PAUSE, crash=st.booleans())
        def rename_organization(self, data: Any, new_name: str, pause: str | None,
                                crash: bool) -> None:
            org = self.orgs[self.pick(data)]
            pauses.armed = pause

            async def call() -> None:
                response = await rename(self.app.http, org["auth"], org["name"], new_name)
                assert response.status_code in ANSWERS, response.text
                if response.status_code == 200:
                    org["name"] = response.json()["organization_name"]

            self.launch(call())
            if crash:
                self.crash_and_restart()

        @rule(data=st.data(), pause=PAUSE, crash=st.booleans())
        def delete_organization(self, data: Any, pause: str | None, crash: bool) -> None:
            org = self.orgs[self.pick(data)]
            pauses.armed = pause

            async def call() -> None:
                response = await delete(self.app.http, org["auth"], org["name"])
                assert response.status_code in ANSWERS, response.text

            self.launch(call())
            if crash:
                self.crash_and_restart()

        @rule(data=st.data(), count=st.integers(1, 3))
        def write_records(self, data: Any, count: int) -> None:
            org_id = self.pick(data)
            org = self.orgs[org_id]

            async def call() -> None:
                for _ in range(count):
                    org["tried"] += 1
                    response = await self.app.http.post(
                        "/org/records/note", headers=org["auth"], json={"owner": org_id})
                    assert response.status_code in ANSWERS, response.text
                    if response.status_code == 201:
                        org["acked"] += 1

            self.launch(call())

        @rule(data=st.data())
        def declare_index(self, data: Any) -> None:
            org = self.orgs[self.pick(data)]
            body = {"name": f"ix{next(self.indexes)}", "kind": "note",
                    "fields": [{"path": "owner"}]}

            async def call() -> None:
                response = await self.app.http.post("/org/indexes", headers=org["auth"],
                                                    json=body)
                assert response.status_code in ANSWERS, response.text

            self.launch(call())

        # -- the schedule --------------------------------------------------------------------

        @rule(which=st.integers(0, 9))
        def release_a_paused_operation(self, which: int) -> None:
            if pauses.paused:
                _, _, released = pauses.paused.pop(which % len(pauses.paused))
                released.set()
                self.run(asyncio.sleep(0.1))

        def crash_and_restart(self) -> None:
            if not any(step in CRASHABLE for step, _, _ in pauses.paused):
                return
            # The paused operations' process "dies": they stay paused (released only at
            # the end, when they must find themselves taken over), its requests get no
            # answer, and a new instance recovers them once their lease has run out.
            for task in self.tasks:
                task.cancel()
            self.run(asyncio.gather(*self.tasks, return_exceptions=True))
            self.tasks.clear()
            for step, _, released in list(pauses.paused):
                if step in CRASHABLE:
                    self.abandoned.append(released)
                    crashes.append(step)
            pauses.paused[:] = [p for p in pauses.paused if p[0] not in CRASHABLE]
            pauses.armed = None
            self.run(asyncio.sleep(LEASE + 0.3))
            self.app = start_app()
            self.crashed = True

        @rule()
        def quiesce(self) -> None:
            self.run(self.settle_everything())
            self.run(assert_whole(db, self.orgs, self.app))

        async def settle_everything(self) -> None:
            pauses.armed = None
            while pauses.paused or any(not t.done() for t in self.tasks):
                for _, _, released in pauses.paused:
                    released.set()
                pauses.paused.clear()
                await asyncio.sleep(0.05)
            for task in self.tasks:
                task.result()  # an answer outside ANSWERS fails here
            self.tasks.clear()
            if self.crashed:  # what the crashed instance left is taken over now
                await asyncio.sleep(LEASE + 0.2)
                await self.app.services.lifecycle.recover()
            await settled(db, within=30)

        @invariant()
        def no_leak_no_orphan(self) -> None:
            self.run(assert_isolated(db))

        def teardown(self) -> None:
            self.run(self.settle_everything())
            # The crashed instance's operations wake up now, long after they were taken
            # over: each must find out at its next step and change nothing.
            for released in self.abandoned:
                released.set()
            self.run(asyncio.sleep(0.5))
            self.run(self.settle_everything())
            self.run(assert_whole(db, self.orgs, self.app))

    try:
        run_state_machine_as_test(Overlaps, settings=hypothesis_settings(
            max_examples=7, stateful_step_count=15, deadline=None, derandomize=True,
            suppress_health_check=list(HealthCheck)))
    finally:
        for context in reversed(contexts):
            loop.run_until_complete(context.__aexit__(None, None, None))
        loop.close()
    assert crashes, f"no run crashed an operation; pauses: {pauses.seen}"


async def in_flight_now(db: Any) -> set[Any]:
    return {op["organization_id"] for op in await db["lifecycle_ops"].find(
        {"phase": {"$ne": "done"}}).to_list(None)}


async def assert_isolated(db: Any) -> None:
    """What must hold at every moment, operations in flight or not.

    The reads below are not one snapshot, and operations go on while they run: an
    operation counts as in flight if it was before the first read or after the last (a
    create that finished between reading the organizations and reading the claims would
    otherwise hold a claim "for nobody")."""
    in_flight = await in_flight_now(db)
    collections = {n for n in await db.list_collection_names() if n.startswith("org_")}
    owners = {o["_id"]: o for o in await db["tenant_collections"].find({}).to_list(None)}
    claims = await db["slug_claims"].find({}).to_list(None)
    orgs = {o["_id"]: o for o in await db["organizations"].find({}).to_list(None)}
    in_flight |= await in_flight_now(db)
    for name in collections:
        # A collection may outlive its owner only while that owner's delete settles.
        owner = owners.get(name)
        assert owner is not None or in_flight, f"{name} belongs to nobody"
        if owner is None:
            continue
        foreign = await db[name].count_documents(
            {"data.owner": {"$ne": str(owner["organization_id"])}})
        assert foreign == 0, f"{name} holds another organization's records"
    for claim in claims:
        holder = claim["organization_id"]
        assert holder in orgs or holder in in_flight, f"{claim['_id']} claimed by nobody"
    for org in orgs.values():
        if org["state"] == "active":
            assert org["collection_name"] in collections or org["_id"] in in_flight, org
            owner = owners.get(org["collection_name"])
            assert owner is not None and owner["organization_id"] == org["_id"], org


async def assert_whole(db: Any, known: dict[str, dict[str, Any]], app: Any) -> None:
    """Once nothing is in flight: every organization is whole, holds every record
    acknowledged to it (and at most those it tried to write: a crash cuts answers off),
    and its admin reads its records and nothing else."""
    orgs = await db["organizations"].find({}).to_list(None)
    assert all(o["state"] == "active" for o in orgs), orgs
    collections = {n for n in await db.list_collection_names() if n.startswith("org_")}
    assert sorted(o["collection_name"] for o in orgs) == sorted(collections)
    claims = {c["_id"]: c["organization_id"]
              for c in await db["slug_claims"].find({}).to_list(None)}
    assert claims == {o["slug"]: o["_id"] for o in orgs}
    owners = {c["_id"]: (c["organization_id"], c["op_id"])
              for c in await db["tenant_collections"].find({}).to_list(None)}
    assert owners == {o["collection_name"]: (o["_id"], None) for o in orgs}
    for org in orgs:
        org_id = str(org["_id"])
        records = await db[org["collection_name"]].find({}).to_list(None)
        assert {r["data"]["owner"] for r in records} <= {org_id}
        if org_id not in known:  # its create was cut off by a crash: nobody has its token
            assert records == []
            continue
        assert known[org_id]["acked"] <= len(records) <= known[org_id]["tried"], org
        listed = await retried(partial(app.http.get, "/org/records/note",
                                       headers=known[org_id]["auth"], params={"limit": 200}))
        assert listed.status_code == 200, listed.text
        assert {r["data"]["owner"] for r in listed.json()["items"]} <= {org_id}
        assert len(listed.json()["items"]) == len(records)
    gone = set(known) - {str(o["_id"]) for o in orgs}
    for org_id in gone:
        assert await db["members"].count_documents({"organization_id": ObjectId(org_id)}) == 0


async def retried(call: Any, attempts: int = 5) -> Any:
    """A request the test needs answered: a 503 (a loaded machine, the tenant deadline) is
    what a client retries, as it says."""
    for _ in range(attempts - 1):
        response = await call()
        if response.status_code != 503:
            return response
        await asyncio.sleep(0.2)
    return await call()
