"""Journaled, crash-safe create, rename and delete of organizations.

MongoDB cannot put renameCollection (or a collection drop) in a transaction, so each
operation is a short sequence of idempotent steps recorded in `lifecycle_ops` before they
run. Whoever finds an operation whose lease has run out (startup recovery, the periodic
sweep, or a retry of the same request) finishes it from its recorded phase:

- create  started -> claimed -> collection -> (entry removed)         undone on failure
- rename  started -> fenced -> settling -> (entry removed)   completed once marked, else undone
- delete  started -> fenced -> settling -> done (kept a day)          always completed

Late writes: a tenant request resolves its collection name once and then has
TENANT_REQUEST_TIMEOUT_MS (a PyMongo client-side deadline) for its database work. Rename and
delete first mark the organization (new tenant requests get 503 + Retry-After) and note
`settle_after` = mark + that deadline. A request that read the old name before the mark may
still write after the move and thereby re-create the old collection; once `settle_after`
has passed no such request can be running, so settling folds any straggler collection into
the new one (rename) or drops it (delete), and only then releases the old slug. Settling
runs after the response, so callers never wait for the fence.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import pymongo
from bson import ObjectId
from pymongo.errors import DuplicateKeyError, PyMongoError

from org_service.admins.repository import AdminRepository
from org_service.config import Settings
from org_service.db import Document, utcnow
from org_service.errors import Conflict
from org_service.organizations.repository import (
    ACTIVE,
    CREATING,
    DELETING,
    RENAMING,
    LifecycleJournal,
    OrganizationRepository,
    SlugClaims,
    TenantCollections,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

CREATE, RENAME, DELETE = "create", "rename", "delete"
STARTED, CLAIMED, COLLECTION, FENCED, SETTLING, DONE = (
    "started", "claimed", "collection", "fenced", "settling", "done")
# Clock slack between the marking process and the one settling.
FENCE_MARGIN = timedelta(milliseconds=250)
CLAIM_PATIENCE = timedelta(seconds=5)
DONE_KEPT = timedelta(days=1)


class NameTaken(Exception):
    """The slug belongs to another organization (or is still being released)."""


class Busy(Exception):
    """Another lifecycle operation of this organization is in flight."""


class LifecycleManager:
    def __init__(self, *, journal: LifecycleJournal, claims: SlugClaims,
                 organizations: OrganizationRepository, admins: AdminRepository,
                 collections: TenantCollections, settings: Settings) -> None:
        self.journal = journal
        self.claims = claims
        self.organizations = organizations
        self.admins = admins
        self.collections = collections
        self.owner = uuid.uuid4().hex
        self.lease = timedelta(seconds=settings.LIFECYCLE_LEASE_SECONDS)
        self.fence = timedelta(milliseconds=settings.TENANT_REQUEST_TIMEOUT_MS) + FENCE_MARGIN
        # Each run of steps is bounded as a whole (PyMongo CSOT, which also replaces the
        # socket timeout: a renameCollection that copies data may take longer than one
        # ordinary request). The default lease is longer, so a live owner is never overtaken.
        self.step_timeout = max(settings.LIFECYCLE_LEASE_SECONDS,
                                6 * settings.MONGODB_TIMEOUT_MS / 1000)
        self._background: set[asyncio.Task[Any]] = set()

    # -- running steps ---------------------------------------------------------------

    async def _detached(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run `work` in its own task with a fresh context: a client that disconnects
        cannot cancel it half-way, and the tenant request's deadline does not apply."""
        async def bounded() -> T:
            with pymongo.timeout(self.step_timeout):
                return await work()

        task = asyncio.get_running_loop().create_task(bounded(), context=contextvars.Context())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return await asyncio.shield(task)

    def _later(self, work: Callable[[], Awaitable[Any]]) -> None:
        async def logged() -> None:
            try:
                await work()
            except PyMongoError as exc:  # the journal keeps it; the sweep will finish it
                log.warning("settling left for the sweep: %s", exc)

        task = asyncio.get_running_loop().create_task(logged(), context=contextvars.Context())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    def _op(self, kind: str, organization_id: ObjectId, phase: str, **fields: Any) -> Document:
        now = utcnow()
        return {"_id": ObjectId(), "kind": kind, "organization_id": organization_id,
                "phase": phase, "owner": self.owner, "lease_until": now + self.lease,
                "started_at": now, **fields}

    async def _start(self, make_op: Callable[[Document], Document], org: Document
                     ) -> tuple[Document, Document]:
        """Journal a new operation on `org`: (the entry, the organization as it is now).

        A previous operation of the organization that is settling is settled first; one
        whose owner is gone is finished or undone first (so a retried request sees its
        effect); Busy when one really is in flight."""
        for _ in range(3):
            op = make_op(org)
            try:
                await self.journal.start(op)
                return op, org
            except DuplicateKeyError:
                previous = await self.journal.for_organization(org["_id"])
                if previous is not None:
                    if previous["phase"] == SETTLING:
                        await self._settle(previous)
                    elif (previous["lease_until"] >= utcnow()
                          or not await self.recover_one(previous)):
                        raise Busy() from None
                current = await self.organizations.get(org["_id"])
                if current is None:
                    raise Busy() from None
                org = current
        raise Busy()

    async def _claim(self, slug: str, organization_id: ObjectId) -> None:
        if await self.claims.claim(slug, organization_id):
            return
        # A slug just given up by a rename or delete is free once that has settled.
        holder = await self.claims.owner(slug)
        op = await self.journal.for_organization(holder["organization_id"]) if holder else None
        # The holder's rename or delete may have answered already while its settling task
        # has not started yet (on a loaded machine, a while): give it time to get there.
        deadline = utcnow() + self.fence + CLAIM_PATIENCE
        while op is not None and op["phase"] != SETTLING and utcnow() < deadline:
            await asyncio.sleep(0.05)
            op = await self.journal.for_organization(op["organization_id"])
        if op is not None and op["phase"] == SETTLING:
            await self._settle(op)
        # Settled by us, or meanwhile by its own task (the op is gone then): try once more.
        if holder is not None and await self.claims.claim(slug, organization_id):
            return
        raise NameTaken()

    async def _fail(self, op: Document, undo: Callable[[Document], Awaitable[Any]]) -> None:
        """A step failed: resolve the operation now if the database lets us; otherwise hand
        it over at once to whoever comes next (a retry, the sweep, a restart)."""
        try:
            await undo(op)
        except PyMongoError as exc:
            log.warning("lifecycle %s %s left for recovery: %s", op["kind"], op["_id"], exc)
            with contextlib.suppress(PyMongoError):
                await self.journal.advance(op, lease_until=utcnow())

    # -- create ------------------------------------------------------------------------

    async def create(self, *, organization_id: ObjectId, name: str, slug: str,
                     collection_name: str, email: str, password_hash: str
                     ) -> tuple[Document, Document]:
        async def run() -> tuple[Document, Document]:
            op = self._op(CREATE, organization_id, STARTED, name=name, slug=slug,
                          collection_name=collection_name)
            await self.journal.start(op)
            try:
                await self._claim(slug, organization_id)
                await self.journal.advance(op, phase=CLAIMED)
                org = await self.organizations.insert(
                    name=name, slug=slug, collection_name=collection_name, state=CREATING,
                    organization_id=organization_id)
                admin = await self.admins.insert(
                    email=email, password_hash=password_hash, organization_id=organization_id)
                await self.journal.advance(op, phase=COLLECTION)
                if not await self.collections.create(collection_name):
                    # Not ours: an undo must not drop it.
                    await self.journal.advance(op, phase=CLAIMED)
                    raise Conflict(f"The collection '{collection_name}' already exists")
                org = await self.organizations.update(
                    organization_id, {"admin_user_id": str(admin["_id"]), "state": ACTIVE}
                ) or org
                await self.journal.finish(op)
                return org, admin
            except BaseException:
                await self._fail(op, self._undo_create)
                raise

        return await self._detached(run)

    async def _undo_create(self, op: Document) -> None:
        org_id = op["organization_id"]
        org = await self.organizations.get(org_id, active_only=False)
        if org is not None and org["state"] == ACTIVE:
            await self.journal.finish(op)  # it got all the way: keep it
            return
        await self.admins.delete_for(org_id)
        if op["phase"] == COLLECTION:
            await self.collections.drop(op["collection_name"])
        await self.organizations.delete(org_id)
        await self.claims.release(op["slug"], org_id)
        await self.journal.finish(op)

    # -- rename ------------------------------------------------------------------------

    async def rename(self, org: Document, *, new_name: str, new_slug: str,
                     new_collection: str) -> Document:
        def make_op(current: Document) -> Document:
            return self._op(RENAME, current["_id"], STARTED,
                            from_name=current["organization_name"], from_slug=current["slug"],
                            from_collection=current["collection_name"], to_name=new_name,
                            to_slug=new_slug, to_collection=new_collection)

        async def run() -> Document:
            op, current = await self._start(make_op, org)
            if current["slug"] == new_slug:  # a retry: recovery already finished it
                await self.journal.finish(op)
                return current
            try:
                await self._claim(new_slug, current["_id"])
                # The name is ours now, so a collection already there belongs to nobody we
                # know: never fold a tenant's data into it.
                if await self.collections.exists(new_collection):
                    raise Conflict(f"The collection '{new_collection}' already exists")
            except BaseException:
                await self._fail(op, self._abort_rename)
                raise
            try:
                await self._mark(op)
                renamed = await self._rename_finish(op)
            except BaseException:
                await self._fail(op, self._complete_rename)
                raise
            self._settle_later(op)
            return renamed

        return await self._detached(run)

    async def _mark(self, op: Document) -> None:
        # From here the tenant's requests get 503 + Retry-After (see tenancy), and any that
        # resolved the old name before has until settle_after to finish.
        await self.organizations.update(
            op["organization_id"], {"state": RENAMING}, expect={"state": ACTIVE})
        await self.journal.advance(op, phase=FENCED, settle_after=utcnow() + self.fence)

    async def _rename_finish(self, op: Document) -> Document:
        if not await self.collections.move(op["from_collection"], op["to_collection"]) \
                and not await self.collections.exists(op["to_collection"]):
            await self.collections.create(op["to_collection"])  # it never had one
        org = await self.organizations.update(op["organization_id"], {
            "organization_name": op["to_name"], "slug": op["to_slug"],
            "collection_name": op["to_collection"], "state": ACTIVE})
        if org is None:
            raise Conflict("The organization no longer exists")
        return org

    async def _complete_rename(self, op: Document) -> None:
        """Roll forward once the organization was marked; before that, roll back."""
        if op["phase"] == STARTED:
            org = await self.organizations.get(op["organization_id"], active_only=False)
            if org is None or org["state"] != RENAMING:
                await self._abort_rename(op)
                return
            await self.journal.advance(op, phase=FENCED, settle_after=utcnow() + self.fence)
        if op["phase"] == FENCED:
            await self._rename_finish(op)
        self._settle_later(op)

    async def _abort_rename(self, op: Document) -> None:
        # Nothing has moved before the claim: give back the new slug if it became ours.
        org_id = op["organization_id"]
        org = await self.organizations.get(org_id, active_only=False)
        if org is None or org["slug"] != op["to_slug"]:
            await self.claims.release(op["to_slug"], org_id)
        await self.journal.finish(op)

    # -- delete ------------------------------------------------------------------------

    async def delete(self, org: Document, admin: Document) -> Document:
        def make_op(current: Document) -> Document:
            return self._op(DELETE, current["_id"], STARTED,
                            name=current["organization_name"], slug=current["slug"],
                            collection_name=current["collection_name"],
                            admin_id=admin["_id"], admin_version=admin.get("token_version"))

        async def run() -> Document:
            op, _ = await self._start(make_op, org)
            try:
                await self._delete_forward(op)
            except BaseException:
                await self._fail(op, self._complete_delete)
                raise
            self._settle_later(op)
            return op

        return await self._detached(run)

    async def _delete_forward(self, op: Document) -> None:
        org_id = op["organization_id"]
        if op["phase"] == STARTED:
            # Invisible first: from here no token of this organization resolves.
            await self.organizations.update(org_id, {"state": DELETING})
            await self.journal.advance(op, phase=FENCED, settle_after=utcnow() + self.fence)
        if op["phase"] == FENCED:
            await self.collections.drop(op["collection_name"])
            await self.admins.delete_for(org_id)
            await self.organizations.delete(org_id)

    async def _complete_delete(self, op: Document) -> None:
        await self._delete_forward(op)
        self._settle_later(op)

    async def resume_delete(self, op: Document) -> Document:
        """A repeated delete: finish what an earlier one started (if its owner is gone)."""
        if not await self.recover_if_abandoned(op["organization_id"]):
            raise Busy()
        return op

    # -- settling ------------------------------------------------------------------------

    def _settle_later(self, op: Document) -> None:
        self._later(lambda: self._settle(op))

    async def _settle(self, op: Document) -> None:
        if op["phase"] != SETTLING:
            with pymongo.timeout(self.step_timeout):
                await self.journal.advance(
                    op, phase=SETTLING, lease_until=op["settle_after"] + self.lease)
        wait = (op["settle_after"] - utcnow()).total_seconds()
        if wait > 0:
            await asyncio.sleep(wait)
        org_id = op["organization_id"]
        with pymongo.timeout(self.step_timeout):
            if op["kind"] == RENAME:
                await self.collections.move(op["from_collection"], op["to_collection"])
                await self.claims.release(op["from_slug"], org_id)
                await self.journal.finish(op)
            else:
                await self.collections.drop(op["collection_name"])
                await self.claims.release(op["slug"], org_id)
                await self.journal.advance(op, phase=DONE, expires_at=utcnow() + DONE_KEPT)

    # -- recovery ------------------------------------------------------------------------

    async def recover_one(self, op: Document) -> bool:
        """Finish or undo an operation whose lease ran out; False if someone holds it."""
        now = utcnow()
        taken = await self.journal.acquire(op["_id"], owner=self.owner, now=now,
                                           lease_until=now + self.lease)
        if taken is None:
            return False
        log.warning("recovering %s of organization %s from phase %s",
                    taken["kind"], taken["organization_id"], taken["phase"])
        if taken["kind"] == CREATE:
            await self._undo_create(taken)
        elif taken["kind"] == RENAME:
            await self._complete_rename(taken)
        else:
            await self._complete_delete(taken)
        return True

    async def recover(self) -> int:
        """Finish or undo every operation whose owner is gone; how many were handled."""
        handled = 0
        for op in await self.journal.stale(utcnow()):
            if await self._detached(lambda op=op: self.recover_one(op)):
                handled += 1
        return handled

    async def recover_if_abandoned(self, organization_id: ObjectId) -> bool:
        """True when the organization has no operation in flight any more (an abandoned
        one is finished or undone first); False when a live owner still runs one."""
        op = await self.journal.for_organization(organization_id)
        if op is None or op["phase"] in (SETTLING, DONE):
            return True
        if op["lease_until"] >= utcnow():
            return False
        return await self._detached(lambda: self.recover_one(op))
