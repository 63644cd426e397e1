"""Interleavings of a rename, delete, create or index build with another lifecycle request
of the same name or organization (issue 15 and its relatives).

Every overlap is forced by something the test holds: an asyncio.Event that a wrapped step
awaits (the password hash of PUT /org/update, a settling task's collection move or drop,
an index request after its tenant lookup) or a failCommand failpoint that blocks a command
on the server. Nothing "overlaps" by merely running one step after another.

Afterwards each test checks, through the API and in the database: every organization
resolves to exactly one existing `org_*` collection, no `org_*` collection belongs to
nobody, every slug claim belongs to a live organization with that slug, and every
organization reads exactly its own records (written through the API, marked with the
owner's id)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from bson import ObjectId

from tests.organizations.lifecycle_support import (
    Running,
    create,
    delete,
    failing,
    rename,
    running,
    settled,
)

PASSWORD = "secure123"
NEW_PASSWORD = "brand-new-secret-1"
KIND = "note"
WITHIN = 10.0  # seconds any single awaited step of a test may take


# -- tenants and their records, through the API -----------------------------------------


@dataclass
class Tenant:
    id: str
    email: str
    auth: dict[str, str]
    records: set[str] = field(default_factory=set)


async def login(http: httpx.AsyncClient, email: str, *passwords: str) -> dict[str, str]:
    """A fresh token with the first password that works (a rename with a password change
    may or may not have changed it)."""
    for password in passwords or (PASSWORD,):
        response = await http.post("/admin/login", json={"email": email, "password": password})
        if response.status_code == 200:
            return {"Authorization": f"Bearer {response.json()['access_token']}"}
    raise AssertionError(f"no password works for {email}: {response.text}")


async def new_tenant(app: Running, name: str, records: int, email: str | None = None
                     ) -> Tenant:
    created = await create(app.http, name, email)
    assert created.status_code == 201, created.text
    email = email or f"admin@{name.lower().replace(' ', '-')}.example.com"
    tenant = Tenant(created.json()["id"], email, await login(app.http, email))
    await add_records(app.http, tenant, records)
    return tenant


async def add_records(http: httpx.AsyncClient, tenant: Tenant, count: int) -> None:
    for n in range(count):
        response = await http.post(f"/org/records/{KIND}", headers=tenant.auth,
                                   json={"owner": tenant.id, "n": n})
        assert response.status_code == 201, response.text
        tenant.records.add(response.json()["id"])


async def readable(http: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, str]:
    """Record id -> owner, of every record the token's organization can list."""
    response = await http.get(f"/org/records/{KIND}", headers=auth, params={"limit": 500})
    assert response.status_code == 200, response.text
    return {r["id"]: r["data"].get("owner") for r in response.json()["items"]}


async def assert_reads_exactly_its_own(http: httpx.AsyncClient, tenant: Tenant,
                                       others: Sequence[Tenant] = ()) -> None:
    seen = await readable(http, tenant.auth)
    foreign = {rid: owner for rid, owner in seen.items() if owner != tenant.id}
    assert not foreign, f"organization {tenant.id} reads records of others: {foreign}"
    assert set(seen) == tenant.records, (
        f"organization {tenant.id}: {len(tenant.records - set(seen))} of its "
        f"{len(tenant.records)} records are missing")
    for other in others:
        for record_id in other.records:
            response = await http.get(f"/org/records/{KIND}/{record_id}", headers=tenant.auth)
            assert response.status_code == 404, (
                f"organization {tenant.id} reads record {record_id} of {other.id}")


async def assert_invariants(db: Any, http: httpx.AsyncClient, tenants: list[Tenant]) -> None:
    """Once settled: each organization is active and resolves to exactly one existing
    `org_*` collection of its own, no `org_*` collection belongs to nobody, the slug
    claims are exactly the live organizations' slugs, and each of `tenants` (the live
    ones among those the test knows) reads exactly its own records through the API."""
    await settled(db)
    orgs = await db["organizations"].find({}).to_list(None)
    live = {str(o["_id"]) for o in orgs}
    for tenant in tenants:  # first what a tenant sees, then how the database says it is
        assert tenant.id in live, f"organization {tenant.id} is gone"
        await assert_reads_exactly_its_own(http, tenant, [t for t in tenants if t is not tenant])
    assert [o["state"] for o in orgs] == ["active"] * len(orgs), orgs
    owned = [o["collection_name"] for o in orgs]
    assert len(owned) == len(set(owned)), f"organizations share a collection: {orgs}"
    existing = {n for n in await db.list_collection_names() if n.startswith("org_")}
    missing = {(o["organization_name"], o["collection_name"]) for o in orgs} - {
        (o["organization_name"], o["collection_name"]) for o in orgs
        if o["collection_name"] in existing}
    assert not missing, f"organizations without their collection: {sorted(missing)}"
    assert existing <= set(owned), f"collections of nobody: {sorted(existing - set(owned))}"
    claims = {c["_id"]: c["organization_id"]
              for c in await db["slug_claims"].find({}).to_list(None)}
    assert claims == {o["slug"]: o["_id"] for o in orgs}, (
        f"claims {claims} vs organizations {[(o['slug'], o['_id']) for o in orgs]}")


async def organization(db: Any, tenant: Tenant) -> Any:
    return await db["organizations"].find_one({"_id": ObjectId(tenant.id)})


# -- holding a step until the test lets it go ---------------------------------------------


@asynccontextmanager
async def held_on_server(raw_client: Any, *commands: str, block_ms: int) -> AsyncIterator[None]:
    """`failing(..., code=None, block_ms=...)`, and on the way out (also when the test
    fails inside) wait out the commands still held on the server: one released after this
    test is over would act on the next test's database (same name)."""
    try:
        async with failing(raw_client, *commands, code=None, block_ms=block_ms):
            yield
    finally:
        await asyncio.sleep(block_ms / 1000 + 0.1)


@dataclass
class Gate:
    """`entered` is set when the held step is reached; it goes on once `release` is set."""

    entered: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def hold(self) -> None:
        self.entered.set()
        await asyncio.wait_for(self.release.wait(), WITHIN)

    async def reached(self) -> None:
        await asyncio.wait_for(self.entered.wait(), WITHIN)


def hold_password_hash(app: Running, password: str) -> Gate:
    """Hold `hasher.hash(password)` (a rename's new password); other hashes run as ever."""
    gate, original = Gate(), app.services.hasher.hash

    async def hash_(value: str) -> str:
        if value == password:
            await gate.hold()
        hashed: str = await original(value)
        return hashed

    app.services.hasher.hash = hash_
    return gate


def hold_settling(app: Running, step: str) -> Gate:
    """Hold the settling task a rename or delete starts after answering (not anyone else
    who settles the same operation) when it reaches `step` ("move" or "drop") of
    TenantCollections."""
    gate, lifecycle = Gate(), app.services.lifecycle
    settlers: set[asyncio.Task[Any]] = set()
    later, collections = lifecycle._later, lifecycle.collections
    original: Callable[..., Awaitable[Any]] = getattr(collections, step)

    def tagged_later(work: Callable[[], Awaitable[Any]]) -> None:
        async def tagged() -> Any:
            task = asyncio.current_task()
            assert task is not None
            settlers.add(task)
            return await work()

        later(tagged)

    async def held(*args: Any) -> Any:
        if asyncio.current_task() in settlers and not gate.release.is_set():
            await gate.hold()
        return await original(*args)

    lifecycle._later = tagged_later
    setattr(collections, step, held)
    return gate


async def phase_reached(db: Any, tenant: Tenant, phase: str) -> None:
    deadline = asyncio.get_running_loop().time() + WITHIN
    while not await db["lifecycle_ops"].count_documents(
            {"organization_id": ObjectId(tenant.id), "phase": phase}):
        assert asyncio.get_running_loop().time() < deadline, phase
        await asyncio.sleep(0.02)


def assert_conflict(response: httpx.Response) -> None:
    assert response.status_code == 409, response.text
    assert response.json()["error"] == "conflict", response.text


# -- 1. issue 15: a rename built from a stale tenant context ---------------------------


async def test_a_rename_resuming_after_its_name_was_freed_and_retaken_gets_409(
        lifecycle_settings: Any, lifecycle_db: Any) -> None:
    async with running(lifecycle_settings) as app:
        a = await new_tenant(app, "Stale", 5)
        v = await new_tenant(app, "Victim", 7)
        hashing = hold_password_hash(app, NEW_PASSWORD)

        # R1 read "Stale" (org_stale) as its tenant context and now sits in its hash.
        r1 = asyncio.create_task(app.http.put("/org/update", headers=a.auth, json={
            "old_organization_name": "Stale", "new_organization_name": "Stale B",
            "password": NEW_PASSWORD}))
        await hashing.reached()
        # Meanwhile R2 renames A away and frees the slug; V takes the freed name.
        r2 = await rename(app.http, a.auth, "Stale", "Stale C")
        assert r2.status_code == 200, r2.text
        taken = await rename(app.http, v.auth, "Victim", "Stale")
        assert taken.status_code == 200, taken.text
        assert taken.json()["collection_name"] == "org_stale"
        await settled(lifecycle_db)
        assert not r1.done()

        hashing.release.set()
        r1_response = await asyncio.wait_for(r1, WITHIN)
        await settled(lifecycle_db)

        # The old password still works after a 409 (nothing touched); today R1 changed it.
        a.auth = await login(app.http, a.email, PASSWORD, NEW_PASSWORD)
        await assert_reads_exactly_its_own(app.http, v, [a])
        await assert_reads_exactly_its_own(app.http, a, [v])
        assert (await organization(lifecycle_db, a))["collection_name"] == "org_stale_c"
        assert (await organization(lifecycle_db, v))["collection_name"] == "org_stale"
        await assert_invariants(lifecycle_db, app.http, [a, v])
        assert_conflict(r1_response)
        await login(app.http, a.email, PASSWORD)  # the refused rename changed no password


# -- 2. the same rename submitted twice -----------------------------------------------------


@pytest.mark.parametrize("delay", [0.0, 0.8], ids=["at-once", "after-the-lease"])
@pytest.mark.parametrize("second_name", ["Zenith", "Nadir"])
async def test_a_double_submitted_rename_renames_once_and_loses_nothing(
        lifecycle_settings: Any, lifecycle_db: Any, raw_client: Any, second_name: str,
        delay: float) -> None:
    # The second request arrives while the first is held in renameCollection: at once
    # (within the first one's lease) or after its 0.5 s lease ran out (still held).
    async with running(lifecycle_settings) as app:
        acme = await new_tenant(app, "Acme", 6)
        other = await new_tenant(app, "Other Co", 2)
        async with held_on_server(raw_client, "renameCollection", block_ms=1500):
            if delay:
                first = asyncio.create_task(rename(app.http, acme.auth, "Acme", "Zenith"))
                await phase_reached(lifecycle_db, acme, "fenced")
                await asyncio.sleep(delay)
                assert not first.done()  # still held in renameCollection
                responses = await asyncio.wait_for(asyncio.gather(
                    first, rename(app.http, acme.auth, "Acme", second_name)), WITHIN)
            else:
                responses = await asyncio.wait_for(asyncio.gather(
                    rename(app.http, acme.auth, "Acme", "Zenith"),
                    rename(app.http, acme.auth, "Acme", second_name)), WITHIN)

        statuses = [r.status_code for r in responses]
        if delay:  # the first one was in flight first: it is the one that renames
            winner, loser = responses
        else:
            winner, loser = sorted(responses, key=lambda r: r.status_code)
        assert winner.status_code == 200, (statuses, winner.text)
        renamed_to = winner.json()["collection_name"]
        assert renamed_to in ("org_zenith", f"org_{second_name.lower()}"), winner.text
        if loser.status_code == 200 and second_name == "Zenith":
            # The identical rename may answer with the state already reached.
            assert loser.json()["collection_name"] == "org_zenith", loser.text
        else:
            assert_conflict(loser)
        assert (await organization(lifecycle_db, acme))["collection_name"] == renamed_to
        await assert_invariants(lifecycle_db, app.http, [acme, other])


# -- 3. a rename racing a delete of the same organization -----------------------------------


@pytest.mark.parametrize("delay", [0.1, 0.8], ids=["within-the-lease", "after-the-lease"])
async def test_a_delete_during_a_rename_waits_or_runs_after_never_half_way(
        lifecycle_settings: Any, lifecycle_db: Any, raw_client: Any, delay: float) -> None:
    async with running(lifecycle_settings) as app:
        acme = await new_tenant(app, "Acme", 6)
        other = await new_tenant(app, "Other Co", 2)
        async with held_on_server(raw_client, "renameCollection", block_ms=1500):
            renaming = asyncio.create_task(rename(app.http, acme.auth, "Acme", "Zenith"))
            await phase_reached(lifecycle_db, acme, "fenced")
            await asyncio.sleep(delay)
            assert not renaming.done()  # still held in renameCollection
            deleted = await asyncio.wait_for(delete(app.http, acme.auth, "Acme"), WITHIN)
            renamed = await asyncio.wait_for(renaming, WITHIN)

        assert renamed.status_code == 200, renamed.text
        if deleted.status_code == 200:  # it ran after the rename: all gone
            await assert_invariants(lifecycle_db, app.http, [other])
            assert await organization(lifecycle_db, acme) is None
            assert await lifecycle_db.list_collection_names(
                filter={"name": {"$regex": "^org_"}}) == ["org_other_co"]
        else:  # it waited: refused, nothing done
            assert deleted.status_code in (409, 503), deleted.text
            if deleted.status_code == 503:
                assert int(deleted.headers["Retry-After"]) >= 1
            else:
                assert_conflict(deleted)
            assert (await organization(lifecycle_db, acme))["collection_name"] == "org_zenith"
            await assert_invariants(lifecycle_db, app.http, [acme, other])


# -- 4. a delete racing a create of the same name ---------------------------------------------


async def test_a_create_during_a_delete_of_the_same_name_gets_a_fresh_empty_collection(
        lifecycle_settings: Any, lifecycle_db: Any, raw_client: Any) -> None:
    async with running(lifecycle_settings) as app:
        old = await new_tenant(app, "Acme", 6)
        other = await new_tenant(app, "Other Co", 2)
        async with held_on_server(raw_client, "drop", block_ms=1500):
            deleting = asyncio.create_task(delete(app.http, old.auth, "Acme"))
            await phase_reached(lifecycle_db, old, "fenced")
            await asyncio.sleep(0.1)  # inside the held drop of org_acme
            created = await create(app.http, "Acme", "second@acme.example.com")
            deleted = await asyncio.wait_for(deleting, WITHIN)

        assert deleted.status_code == 200, deleted.text
        await settled(lifecycle_db)
        assert await organization(lifecycle_db, old) is None
        if created.status_code != 201:
            assert_conflict(created)
            await assert_invariants(lifecycle_db, app.http, [other])
            return
        assert created.json()["collection_name"] == "org_acme"
        new = Tenant(created.json()["id"], "second@acme.example.com",
                     await login(app.http, "second@acme.example.com"))
        assert await readable(app.http, new.auth) == {}, "the old records are still there"
        await add_records(app.http, new, 3)
        await assert_invariants(lifecycle_db, app.http, [new, other])


@pytest.mark.parametrize(("grace_days", "step"), [(7, "move"), (0, "drop")])
async def test_a_late_settling_of_a_delete_does_not_drop_the_next_owners_collection(
        lifecycle_settings: Any, lifecycle_db: Any, grace_days: int, step: str) -> None:
    # The delete's own settling task is held just before it drops org_acme (with a restore
    # window: folds it into the parked collection); meanwhile a create of "Acme" settles the
    # delete itself, takes the name and its new collection.
    settings = lifecycle_settings.model_copy(update={"DELETION_GRACE_DAYS": grace_days})
    async with running(settings) as app:
        old = await new_tenant(app, "Acme", 6)
        other = await new_tenant(app, "Other Co", 2)
        settling = hold_settling(app, step)
        deleted = await delete(app.http, old.auth, "Acme")
        assert deleted.status_code == 200, deleted.text
        await settling.reached()

        created = await create(app.http, "Acme", "second@acme.example.com")
        assert created.status_code in (201, 409), created.text
        new: Tenant | None = None
        if created.status_code == 201:
            new = Tenant(created.json()["id"], "second@acme.example.com",
                         await login(app.http, "second@acme.example.com"))
            await add_records(app.http, new, 3)
        settling.release.set()
        await settled(lifecycle_db)
        await asyncio.sleep(0.3)  # let the released task finish (its op is already done)

        await assert_invariants(lifecycle_db, app.http, [t for t in (new, other) if t])


async def test_a_late_settling_of_a_rename_does_not_fold_the_next_owners_records(
        lifecycle_settings: Any, lifecycle_db: Any) -> None:
    # The rename's own settling task is held just before its straggler move
    # org_acme -> org_zenith; meanwhile a create of "Acme" settles the rename itself, takes
    # the freed name and writes to its new org_acme.
    async with running(lifecycle_settings) as app:
        renamed = await new_tenant(app, "Acme", 6)
        settling = hold_settling(app, "move")
        response = await rename(app.http, renamed.auth, "Acme", "Zenith")
        assert response.status_code == 200, response.text
        await settling.reached()

        created = await create(app.http, "Acme", "second@acme.example.com")
        assert created.status_code in (201, 409), created.text
        tenants = [renamed]
        if created.status_code == 201:
            new = Tenant(created.json()["id"], "second@acme.example.com",
                         await login(app.http, "second@acme.example.com"))
            await add_records(app.http, new, 3)
            tenants.append(new)
        settling.release.set()
        await settled(lifecycle_db)
        await asyncio.sleep(0.3)  # let the released task finish (its op is already gone)

        await assert_invariants(lifecycle_db, app.http, tenants)


# -- 5. index builds racing a rename ---------------------------------------------------------


INDEX = {"name": "by_owner", "kind": KIND, "fields": [{"path": "owner"}]}


async def assert_index_listed(http: httpx.AsyncClient, tenant: Tenant) -> None:
    deadline = asyncio.get_running_loop().time() + WITHIN
    while True:
        response = await http.get("/org/indexes", headers=tenant.auth)
        assert response.status_code == 200, response.text
        states = {ix["name"]: ix["state"] for ix in response.json()["indexes"]}
        if states.get("by_owner") != "building":
            break
        assert asyncio.get_running_loop().time() < deadline, states
        await asyncio.sleep(0.05)
    assert states == {"by_owner": "ready"}, "the accepted index is not on the collection"


async def test_a_rename_during_an_index_build_leaves_no_collection_behind(
        lifecycle_settings: Any, lifecycle_db: Any, raw_client: Any) -> None:
    async with running(lifecycle_settings) as app:
        acme = await new_tenant(app, "Acme", 6)
        async with held_on_server(raw_client, "createIndexes", block_ms=1500):
            indexing = asyncio.create_task(
                app.http.post("/org/indexes", headers=acme.auth, json=INDEX))
            await asyncio.sleep(0.3)  # the build is held on the server
            assert not indexing.done()
            renamed = await rename(app.http, acme.auth, "Acme", "Zenith")
            indexed = await asyncio.wait_for(indexing, WITHIN)

        assert indexed.status_code in (201, 202), indexed.text
        if renamed.status_code != 200:
            assert_conflict(renamed)
        await settled(lifecycle_db)
        await asyncio.sleep(0.2)  # any late build lands
        await assert_invariants(lifecycle_db, app.http, [acme])
        await assert_index_listed(app.http, acme)


@pytest.mark.parametrize("stale_tenant", [False, True],
                         ids=["resolved-during-rename", "resolved-before-the-mark"])
async def test_an_index_request_during_a_rename_leaves_no_collection_behind(
        lifecycle_settings: Any, lifecycle_db: Any, raw_client: Any, stale_tenant: bool
        ) -> None:
    # The mirror: the rename is held in renameCollection and the index request comes
    # during it, either resolving its tenant then, or having resolved it (org_acme) just
    # before the rename marked the organization (held by an event after the lookup).
    async with running(lifecycle_settings) as app:
        acme = await new_tenant(app, "Acme", 6)
        lookup, create_index = Gate(), app.services.records.create_index
        indexing: asyncio.Task[httpx.Response] | None = None
        if stale_tenant:
            async def held_create_index(tenant: Any, body: Any) -> Any:
                await lookup.hold()
                return await create_index(tenant, body)

            app.services.records.create_index = held_create_index
            indexing = asyncio.create_task(
                app.http.post("/org/indexes", headers=acme.auth, json=INDEX))
            await lookup.reached()
        async with held_on_server(raw_client, "renameCollection", "createIndexes", block_ms=1500):
            renaming = asyncio.create_task(rename(app.http, acme.auth, "Acme", "Zenith"))
            await phase_reached(lifecycle_db, acme, "fenced")
            await asyncio.sleep(0.1)  # inside the held renameCollection
            if indexing is None:
                indexing = asyncio.create_task(
                    app.http.post("/org/indexes", headers=acme.auth, json=INDEX))
            else:
                lookup.release.set()
            renamed = await asyncio.wait_for(renaming, WITHIN)
            indexed = await asyncio.wait_for(indexing, WITHIN)

        assert renamed.status_code == 200, renamed.text
        await settled(lifecycle_db)
        await asyncio.sleep(0.2)  # any late build lands
        await assert_invariants(lifecycle_db, app.http, [acme])
        if indexed.status_code in (201, 202):
            await assert_index_listed(app.http, acme)
        else:
            assert indexed.status_code in (409, 503), indexed.text
