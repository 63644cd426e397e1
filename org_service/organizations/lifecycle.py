"""Journaled, crash-safe create, rename and delete of organizations, and the exclusive
hold of an organization's collection that index builds and drops take.

MongoDB cannot put renameCollection (or a collection drop) in a transaction, so each
operation is a short sequence of idempotent steps recorded in `lifecycle_ops` before they
run. Whoever finds an operation whose lease has run out (startup recovery, the periodic
sweep, or a retry of the same request) takes it over with a new token and finishes it from
its recorded phase; the former holder's next step then fails (LeaseLost) instead of acting:

- create  started -> claimed -> collection -> (entry removed)         undone on failure
- rename  started -> fenced -> settling -> (entry removed)   completed once marked, else undone
- delete  started -> fenced -> settling -> done (kept a day)          always completed
- hold    started -> (entry removed)                                   index builds and drops
- purge, restore (of an organization deleted within its restore window): see window.py

A delete with DELETION_GRACE_DAYS > 0 parks instead of dropping: the collection is renamed
to parked_<id>, the organization's document and members move to `deleted_organizations` and
`deleted_members` (so name and emails are free at once), its pending invitations are revoked
and its queued mail dropped; settling folds stragglers into the parked collection and moves
members added by requests that raced the delete. With 0 it drops all of it, as before.

Acting on the truth: a request's tenant context was read when it started, so an operation
takes the organization's journal slot first and then re-reads the organization; it builds
its entry from that read, refuses (Stale, 409) when the organization is no longer what the
caller named, and marks the organization by compare-and-set on its state, slug and
collection. A collection is moved or dropped only while `tenant_collections` says this
operation holds it (see CollectionOwners).

Late writes: a tenant request resolves its collection name once and then has
TENANT_REQUEST_TIMEOUT_MS (a PyMongo client-side deadline) for its database work. Rename and
delete first mark the organization (new tenant requests get 503 + Retry-After) and note
`settle_after` = mark + that deadline. A request that read the old name before the mark may
still write after the move and thereby re-create the old collection; once `settle_after`
has passed no such request can be running, so settling folds any straggler collection into
the new one (rename) or drops it (delete), and only then gives up the old name. Settling
runs after the response, by the operation's holder alone: anyone else who needs it over
waits for it (or takes it over once its lease has run out).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import pymongo
from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from org_service.config import OperatorSettings
from org_service.db import Document, utcnow
from org_service.invitations.repository import InvitationRepository
from org_service.members.repository import MemberRepository
from org_service.naming import OrganizationIdentity
from org_service.organizations.errors import (
    Busy,
    CollectionTaken,
    Inconsistent,
    LeaseLost,
    NameTaken,
    Stale,
)
from org_service.organizations.repository import (
    CollectionOwners,
    DeletedOrganizations,
    LifecycleJournal,
    OrganizationRepository,
    SlugClaims,
    TenantCollections,
    parked_collection,
)
from org_service.organizations.schemas import ACTIVE, CREATING, DELETING, RENAMING
from org_service.outbox.repository import OutboxRepository

log = logging.getLogger(__name__)
T = TypeVar("T")

CREATE, RENAME, DELETE, HOLD = "create", "rename", "delete", "hold"
STARTED, CLAIMED, COLLECTION, FENCED, SETTLING, DONE = (
    "started", "claimed", "collection", "fenced", "settling", "done")
# Clock slack between the marking process and the one settling.
FENCE_MARGIN = timedelta(milliseconds=250)
CLAIM_PATIENCE = timedelta(seconds=5)
DONE_KEPT = timedelta(days=1)
POLL_SECONDS = 0.05

Checkpoint = Callable[[str, Document], Awaitable[None]]
Recoverer = Callable[[Document], Awaitable[None]]
# Why the queued mail of a deleted organization was not sent.
ORGANIZATION_DELETED = "organization_deleted"


def _parks(op: Document) -> bool:
    """Whether a delete parks the organization for a restore window (journaled before
    windows existed: no, it drops)."""
    return bool(op.get("grace_days"))


class LifecycleManager:
    def __init__(self, *, journal: LifecycleJournal, claims: SlugClaims,
                 owners: CollectionOwners, organizations: OrganizationRepository,
                 members: MemberRepository, collections: TenantCollections,
                 deleted: DeletedOrganizations, invitations: InvitationRepository,
                 outbox: OutboxRepository, settings: OperatorSettings) -> None:
        self.journal = journal
        self.claims = claims
        self.owners = owners
        self.organizations = organizations
        self.members = members
        self.collections = collections
        self.deleted = deleted
        self.invitations = invitations
        self.outbox = outbox
        self.grace = timedelta(days=settings.DELETION_GRACE_DAYS)
        # How operations of other kinds (window.py: purge, restore) are finished or undone.
        self.recoverers: dict[str, Recoverer] = {}
        self.owner = uuid.uuid4().hex
        self.lease = timedelta(seconds=settings.LIFECYCLE_LEASE_SECONDS)
        self.fence = timedelta(milliseconds=settings.TENANT_REQUEST_TIMEOUT_MS) + FENCE_MARGIN
        # Each run of steps is bounded as a whole (PyMongo CSOT, which also replaces the
        # socket timeout: a renameCollection that copies data may take longer than one
        # ordinary request). The default lease is longer, so a live owner is never overtaken.
        self.step_timeout = max(settings.LIFECYCLE_LEASE_SECONDS,
                                6 * settings.MONGODB_TIMEOUT_MS / 1000)
        # An index build holds the collection for as long as it may run on the server.
        self.hold_lease = timedelta(seconds=settings.INDEX_BUILD_TIMEOUT_SECONDS) + self.lease
        # Called between the steps of an operation (tests pause operations here to force
        # an interleaving); a no-op in production.
        self.checkpoint: Checkpoint | None = None
        self.claim_patience = CLAIM_PATIENCE
        self._background: set[asyncio.Task[Any]] = set()

    @classmethod
    def on(cls, db: AsyncDatabase[Document], settings: OperatorSettings, *,
           organizations: OrganizationRepository | None = None,
           members: MemberRepository | None = None,
           collections: TenantCollections | None = None) -> LifecycleManager:
        """The manager of the master database `db`, with the repositories the caller
        shares with other services (the API) or fresh ones (the operator CLI)."""
        return cls(journal=LifecycleJournal(db), claims=SlugClaims(db),
                   owners=CollectionOwners(db),
                   organizations=organizations or OrganizationRepository(db),
                   members=members or MemberRepository(db),
                   collections=collections or TenantCollections(db),
                   deleted=DeletedOrganizations(db), invitations=InvitationRepository(db),
                   outbox=OutboxRepository(db), settings=settings)

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
            except LeaseLost:
                log.info("settling taken over by another holder")

        task = asyncio.get_running_loop().create_task(logged(), context=contextvars.Context())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        """Stop the work this process runs in the background (settling, detached steps).
        Each cancelled step undoes or hands over what it began (`_fail`), which its step
        timeout bounds; a shutdown waits that long at most, and leaves anything still
        running then to the journal's recovery (another process, or the next start)."""
        for task in list(self._background):
            task.cancel()
        if not self._background:
            return
        _, running = await asyncio.wait(set(self._background),
                                        timeout=self.step_timeout + 5)
        if running:
            log.warning("shutdown: %d lifecycle task(s) still running, left to recovery",
                        len(running))

    async def _step(self, name: str, op: Document) -> None:
        """Between two steps: still the holder (else LeaseLost), for another lease."""
        if self.checkpoint is not None:
            await self.checkpoint(name, op)
        await self.journal.advance(op, lease_until=utcnow() + self.lease)

    def _op(self, kind: str, organization_id: ObjectId, **fields: Any) -> Document:
        now = utcnow()
        return {"_id": ObjectId(), "kind": kind, "organization_id": organization_id,
                "phase": STARTED, "owner": self.owner, "token": uuid.uuid4().hex,
                "lease_until": now + self.lease, "started_at": now, **fields}

    async def _begin(self, kind: str, organization_id: ObjectId, *, patient: bool = False,
                     **fields: Any) -> Document:
        """Take the organization's journal slot for a new operation. A previous operation
        that is settling is waited for (with `patient`, one in flight too, a while); one
        whose owner is gone is finished or undone first (so a retried request sees its
        effect); Busy when one really is in flight."""
        for _ in range(3):
            op = self._op(kind, organization_id, **fields)
            try:
                await self.journal.start(op)
                return op
            except DuplicateKeyError:
                if not await self._quiet(organization_id, patient=patient):
                    raise Busy() from None
        raise Busy()

    async def _quiet(self, organization_id: ObjectId, *, patient: bool) -> bool:
        """Whether the organization has no operation left (a finished delete's record
        aside). A settling one is waited for, and with `patient` one in flight too, for a
        while (its fence plus claim_patience); one whose lease ran out is taken over here.
        Never settles someone else's operation: only its holder acts on it."""
        deadline = utcnow() + self.fence + self.claim_patience
        while True:
            op = await self.journal.for_organization(organization_id)
            if op is None or op["phase"] == DONE:
                return True
            now = utcnow()
            if op["lease_until"] < now:
                await self._detached(functools.partial(self.recover_one, op))
                continue
            if op["phase"] == SETTLING:
                deadline = max(deadline, op["settle_after"] + self.claim_patience)
            elif not patient:
                return False
            if now >= deadline:
                return False
            await asyncio.sleep(POLL_SECONDS)

    async def _claim(self, identity: OrganizationIdentity, organization_id: ObjectId) -> None:
        slug = identity.slug
        # A slug just given up by a rename or delete is free once that has settled. Its
        # operation may have answered already while its settling has not started yet (on
        # a loaded machine, a while): give it time to get there. The holder may also let
        # go between the refused claim and the read of who holds it: then claim again.
        for _ in range(3):
            if await self.claims.claim(slug, organization_id):
                return
            holder = await self.claims.owner(slug)
            if holder is not None and not await self._quiet(
                    holder["organization_id"], patient=True):
                break
        raise NameTaken(identity.name)

    async def _fail(self, op: Document, undo: Callable[[Document], Awaitable[Any]]) -> None:
        """A step failed: resolve the operation now if the database lets us; otherwise hand
        it over at once to whoever comes next (a retry, the sweep, a restart)."""
        try:
            await undo(op)
        except LeaseLost:
            log.warning("lifecycle %s %s was taken over", op["kind"], op["_id"])
        except PyMongoError as exc:
            log.warning("lifecycle %s %s left for recovery: %s", op["kind"], op["_id"], exc)
            with contextlib.suppress(PyMongoError, LeaseLost):
                await self.journal.advance(op, lease_until=utcnow())

    async def _renew(self, op: Document) -> None:
        """Before acting on a collection: still the holder, and the lease covers the act
        (every run of steps is bounded by step_timeout), so nobody can take over while
        this holder may still be acting."""
        await self.journal.advance(
            op, lease_until=utcnow() + max(self.lease, timedelta(seconds=self.step_timeout)))

    async def _current(self, op: Document, expected_slug: str) -> Document:
        """The organization as it is now that `op` holds its slot; Stale (and the slot
        given back) when it is gone or no longer has the slug the request named."""
        org = await self.organizations.get(op["organization_id"])
        if org is None or org["slug"] != expected_slug:
            await self.journal.finish(op)
            raise Stale()
        return org

    async def _hold_and_mark(self, op: Document, org: Document, state: str) -> None:
        """Hold the organization's collection for `op`, then mark the organization `state`
        if it is still active with the slug and collection `op` was built from."""
        if not await self.owners.hold(org["collection_name"], org["_id"], op["_id"]):
            raise Inconsistent(f"no ownership of {org['collection_name']}")
        if await self.organizations.update(
                org["_id"], {"state": state},
                expect={"state": ACTIVE, "slug": org["slug"],
                        "collection_name": org["collection_name"]}) is None:
            raise Stale()

    # -- create ------------------------------------------------------------------------

    async def create(self, *, organization_id: ObjectId, identity: OrganizationIdentity,
                     email: str, password_hash: str) -> tuple[Document, Document]:
        name, slug, collection_name = identity.name, identity.slug, identity.collection

        async def run() -> tuple[Document, Document]:
            op = self._op(CREATE, organization_id, name=name, slug=slug,
                          collection_name=collection_name)
            await self.journal.start(op)
            try:
                await self._claim(identity, organization_id)
                if not await self.owners.take(collection_name, organization_id, op["_id"]):
                    raise CollectionTaken(collection_name)
                await self.journal.advance(op, phase=CLAIMED)
                org = await self.organizations.insert(
                    name=name, slug=slug, collection_name=collection_name, state=CREATING,
                    organization_id=organization_id)
                admin = await self.members.insert(
                    email=email, password_hash=password_hash, organization_id=organization_id)
                await self.journal.advance(op, phase=COLLECTION)
                if not await self.collections.create(collection_name):
                    # Not ours: an undo must not drop it.
                    await self.journal.advance(op, phase=CLAIMED)
                    raise CollectionTaken(collection_name)
                org = await self.organizations.update(
                    organization_id, {"admin_user_id": str(admin["_id"]), "state": ACTIVE}
                ) or org
                await self.owners.let_go(collection_name, organization_id, op["_id"])
                await self.journal.finish(op)
                return org, admin
            except BaseException:
                await self._fail(op, self._undo_create)
                raise

        return await self._detached(run)

    async def _undo_create(self, op: Document) -> None:
        org_id, collection = op["organization_id"], op["collection_name"]
        org = await self.organizations.get(org_id, active_only=False)
        if org is not None and org["state"] == ACTIVE:  # it got all the way: keep it
            await self.owners.let_go(collection, org_id, op["_id"])
            await self.journal.finish(op)
            return
        await self.members.delete_for(org_id)
        if op["phase"] == COLLECTION and await self.owners.held(collection, org_id, op["_id"]):
            await self._renew(op)
            await self.collections.drop(collection)
        await self.owners.give_up(collection, org_id, op["_id"])
        await self.organizations.delete(org_id)
        await self.claims.release(op["slug"], org_id)
        await self.journal.finish(op)

    # -- rename ------------------------------------------------------------------------

    async def rename(self, organization_id: ObjectId, *, from_slug: str,
                     to: OrganizationIdentity) -> Document:
        """Rename the organization that has `from_slug` now; Stale when it no longer has it.
        A retry of a rename that already happened answers the organization as it is."""
        new_name, new_slug, new_collection = to.name, to.slug, to.collection

        async def run() -> Document:
            op = await self._begin(RENAME, organization_id, to_name=new_name,
                                   to_slug=new_slug, to_collection=new_collection)
            org = await self.organizations.get(organization_id)
            if org is not None and org["slug"] == new_slug:
                await self.journal.finish(op)
                return org
            org = await self._current(op, from_slug)
            try:
                await self.journal.advance(
                    op, from_name=org["organization_name"], from_slug=org["slug"],
                    from_collection=org["collection_name"])
                await self._step("journaled", op)
                await self._claim(to, organization_id)
                if not await self.owners.take(new_collection, organization_id, op["_id"]):
                    raise CollectionTaken(new_collection)
                # The name is ours now, so a collection already there belongs to nobody we
                # know: never fold a tenant's data into it.
                if await self.collections.exists(new_collection):
                    raise CollectionTaken(new_collection)
                await self._hold_and_mark(op, org, RENAMING)
            except BaseException:
                await self._fail(op, self._abort_rename)
                raise
            try:
                # From here the tenant's requests get 503 + Retry-After (see tenancy), and
                # any that resolved the old name before has until settle_after to finish.
                await self.journal.advance(op, phase=FENCED, settle_after=utcnow() + self.fence)
                await self._step("marked", op)
                renamed = await self._rename_finish(op)
            except Inconsistent:
                await self._fail(op, self._roll_back_rename)
                raise
            except BaseException:
                await self._fail(op, self._complete_rename)
                raise
            self._settle_later(op)
            return renamed

        return await self._detached(run)

    async def _rename_finish(self, op: Document) -> Document:
        org_id = op["organization_id"]
        if not await self.owners.held(op["from_collection"], org_id, op["_id"]):
            raise LeaseLost(op["_id"])
        await self._renew(op)
        if not await self.collections.move(op["from_collection"], op["to_collection"]) \
                and not await self.collections.exists(op["to_collection"]):
            raise Inconsistent(f"neither {op['from_collection']} nor {op['to_collection']} "
                               "exists")
        await self._step("moved", op)
        # previous_slug: a retry of this rename names it as the old name (see
        # OrganizationService.update); set with the new slug, so the two always agree.
        org = await self.organizations.update(org_id, {
            "organization_name": op["to_name"], "slug": op["to_slug"],
            "collection_name": op["to_collection"], "state": ACTIVE,
            "previous_slug": op["from_slug"]},
            expect={"state": RENAMING, "slug": op["from_slug"]})
        if org is None:
            org = await self.organizations.get(org_id, active_only=False)
            if org is None or org["slug"] != op["to_slug"]:
                raise Inconsistent("the organization is not the one this rename marked")
        return org

    async def _complete_rename(self, op: Document) -> None:
        """Roll forward once the organization was marked; before that, roll back."""
        if op["phase"] == STARTED:
            org = await self.organizations.get(op["organization_id"], active_only=False)
            if (org is None or org["state"] != RENAMING or "from_slug" not in op
                    or org["slug"] != op["from_slug"]):
                await self._abort_rename(op)
                return
            await self.journal.advance(op, phase=FENCED, settle_after=utcnow() + self.fence)
        if op["phase"] == FENCED:
            try:
                await self._rename_finish(op)
            except Inconsistent:
                log.error("rename %s of organization %s stopped: %s", op["_id"],
                          op["organization_id"], "its collection is missing; rolled back")
                await self._roll_back_rename(op)
                return
        self._settle_later(op)

    async def _roll_back_rename(self, op: Document) -> None:
        """The marked organization's collection is missing: unmark it, change nothing."""
        await self.organizations.update(op["organization_id"], {"state": ACTIVE},
                                        expect={"state": RENAMING, "slug": op["from_slug"]})
        await self._abort_rename(op)

    async def _abort_rename(self, op: Document) -> None:
        # Nothing has moved: give back the new name and release the old collection.
        org_id = op["organization_id"]
        org = await self.organizations.get(org_id, active_only=False)
        if org is None or org["slug"] != op["to_slug"]:
            await self.owners.give_up(op["to_collection"], org_id, op["_id"])
            await self.claims.release(op["to_slug"], org_id)
        if "from_collection" in op:
            await self.owners.let_go(op["from_collection"], org_id, op["_id"])
        await self.journal.finish(op)

    # -- delete ------------------------------------------------------------------------

    async def delete(self, organization_id: ObjectId, *, slug: str, admin: Document
                     ) -> Document:
        """Delete the organization that has `slug` now; Stale when it no longer has it."""
        async def run() -> Document:
            # The window is the one of the process that started the delete (recovery by a
            # process configured otherwise finishes it the same way).
            op = await self._begin(DELETE, organization_id, admin_id=admin["_id"],
                                   admin_version=admin.get("token_version"),
                                   grace_days=self.grace.days)
            org = await self._current(op, slug)
            try:
                await self.journal.advance(op, name=org["organization_name"],
                                           slug=org["slug"],
                                           collection_name=org["collection_name"])
                await self._step("journaled", op)
                # Invisible first: from here no token of this organization resolves.
                await self._hold_and_mark(op, org, DELETING)
            except BaseException:
                await self._fail(op, self._abort_delete)
                raise
            try:
                await self._delete_forward(op)
            except BaseException:
                await self._fail(op, self._complete_delete)
                raise
            self._settle_later(op)
            return op

        return await self._detached(run)

    async def _abort_delete(self, op: Document) -> None:
        org_id = op["organization_id"]
        org = await self.organizations.get(org_id, active_only=False)
        if org is not None and org["state"] == DELETING:  # marked: it goes on
            await self._complete_delete(op)
            return
        if "collection_name" in op:
            await self.owners.let_go(op["collection_name"], org_id, op["_id"])
        await self.journal.finish(op)

    async def _delete_forward(self, op: Document) -> None:
        org_id = op["organization_id"]
        if op["phase"] == STARTED:
            await self.journal.advance(op, phase=FENCED, settle_after=utcnow() + self.fence)
        await self._step("marked", op)
        if op["phase"] == FENCED:
            if await self.owners.held(op["collection_name"], org_id, op["_id"]):
                await self._renew(op)
                await self._put_away(op)
            await self._step("moved", op)
            if _parks(op):
                org = await self.organizations.get(org_id, active_only=False)
                if org is not None:
                    now = utcnow()
                    await self.deleted.park(
                        org, deleted_by=op.get("admin_id"), deleted_at=now,
                        purge_after=now + timedelta(days=op["grace_days"]))
            # Before the response: the emails are free for anyone at once.
            await self._set_members_aside(op)
            await self.organizations.delete(org_id)

    async def _put_away(self, op: Document) -> None:
        """The held collection, and any straggler a late write re-created, into the
        parked collection (restore window) or gone (no window)."""
        if _parks(op):
            await self.collections.move(op["collection_name"],
                                        parked_collection(op["organization_id"]))
        else:
            await self.collections.drop(op["collection_name"])

    async def _set_members_aside(self, op: Document) -> None:
        """Members, pending invitations and queued mail of the deleted organization.

        Run again at settling: a member add or an invitation accept that read the
        organization before it was marked may write its member after the first run (an
        accept then finds its invitation revoked and takes its member back itself)."""
        org_id = op["organization_id"]
        await self.invitations.revoke_all_of(org_id, by=op.get("admin_id"), now=utcnow())
        await self.outbox.drop_of(org_id, ORGANIZATION_DELETED)
        if not _parks(op):
            await self.members.delete_for(org_id)
            return
        members = await self.members.of_organization(org_id)
        await self.deleted.keep_members(members)
        await self.members.delete_ids(org_id, [m["_id"] for m in members])

    async def _complete_delete(self, op: Document) -> None:
        if op["phase"] == STARTED:
            org = await self.organizations.get(op["organization_id"], active_only=False)
            if org is None or org["state"] != DELETING or "collection_name" not in op:
                await self._abort_delete_unmarked(op, org)
                return
        await self._delete_forward(op)
        self._settle_later(op)

    async def _abort_delete_unmarked(self, op: Document, org: Document | None) -> None:
        if org is None and "collection_name" in op:  # removed already: finish it
            await self.journal.advance(op, phase=FENCED, settle_after=utcnow() + self.fence)
            self._settle_later(op)
            return
        if "collection_name" in op:
            await self.owners.let_go(op["collection_name"], op["organization_id"], op["_id"])
        await self.journal.finish(op)

    async def resume_delete(self, op: Document) -> Document:
        """A repeated delete: finish what an earlier one started (if its owner is gone)."""
        if not await self.recover_if_abandoned(op["organization_id"]):
            raise Busy()
        return op

    # -- holding the collection (index builds and drops) ---------------------------------

    async def hold(self, organization_id: ObjectId, collection_name: str, **fields: Any
                   ) -> Document:
        """Hold the organization's collection exclusively (no rename or delete meanwhile)
        for a piece of work on it; Busy when another operation is in flight, Stale when the
        organization no longer has `collection_name`. Give it back with `release`."""
        async def run() -> Document:
            op = await self._begin(HOLD, organization_id,
                                   lease_until=utcnow() + self.hold_lease, **fields)
            org = await self.organizations.get(organization_id)
            if (org is None or org["collection_name"] != collection_name
                    or not await self.owners.hold(collection_name, organization_id,
                                                  op["_id"])):
                await self.journal.finish(op)
                raise Stale()
            op["collection_name"] = collection_name
            return op

        return await self._detached(run)

    async def release(self, op: Document) -> None:
        async def run() -> None:
            await self.owners.let_go(op["collection_name"], op["organization_id"], op["_id"])
            await self.journal.finish(op)

        try:
            await self._detached(run)
        except (PyMongoError, LeaseLost) as exc:  # the sweep gives it back once it lapses
            log.warning("hold %s left for recovery: %s", op["_id"], exc)

    async def _recover_hold(self, op: Document) -> None:
        if "collection_name" in op:
            await self.owners.let_go(op["collection_name"], op["organization_id"], op["_id"])
        await self.journal.finish(op)

    # -- settling ------------------------------------------------------------------------

    def _settle_later(self, op: Document) -> None:
        self._later(lambda: self._settle(op))

    async def _settle(self, op: Document) -> None:
        """Fold (rename) or drop (delete) stragglers once no request can write any more,
        then give up the old name. Only the operation's holder runs it: every write below
        is conditional on its token, every act on its ownership of the collection."""
        if op["phase"] != SETTLING:
            with pymongo.timeout(self.step_timeout):
                await self.journal.advance(
                    op, phase=SETTLING, lease_until=op["settle_after"] + self.lease)
        wait = (op["settle_after"] - utcnow()).total_seconds()
        if wait > 0:
            await asyncio.sleep(wait)
        await self._step("settling", op)
        org_id = op["organization_id"]
        with pymongo.timeout(self.step_timeout):
            await self._renew(op)
            if op["kind"] == RENAME:
                old, old_slug = op["from_collection"], op["from_slug"]
                if await self.owners.held(old, org_id, op["_id"]):
                    await self.collections.move(old, op["to_collection"])
                await self.owners.give_up(old, org_id, op["_id"])
                await self.owners.let_go(op["to_collection"], org_id, op["_id"])
                await self.claims.release(old_slug, org_id)
                await self.journal.finish(op)
            else:
                old, old_slug = op["collection_name"], op["slug"]
                if await self.owners.held(old, org_id, op["_id"]):
                    await self._put_away(op)
                await self._set_members_aside(op)
                await self.owners.give_up(old, org_id, op["_id"])
                await self.claims.release(old_slug, org_id)
                await self.journal.advance(op, phase=DONE, expires_at=utcnow() + DONE_KEPT)

    # -- migration -----------------------------------------------------------------------

    async def adopt_unclaimed(self) -> None:
        """Adopt (see `adopt`) every organization whose slug is unclaimed or whose
        collection is unowned: three reads at a start-up with nothing to adopt, not three
        round trips per organization."""
        claimed, owned = await self.claims.names(), await self.owners.names()
        for org in await self.organizations.all_names():
            if org["slug"] not in claimed or org["collection_name"] not in owned:
                await self.adopt(org)

    async def adopt(self, org: Document) -> None:
        """Claim the slug and own the collection of an organization from before claims and
        owners existed. One renamed meanwhile by another process gives back what was
        adopted for its old name."""
        org_id, slug, collection = org["_id"], org["slug"], org["collection_name"]
        claimed = await self.claims.adopt(slug, org_id)
        owned = await self.owners.adopt(collection, org_id)
        now = await self.organizations.get(org_id, active_only=False)
        if now is None or now["slug"] != slug:
            if claimed:
                await self.claims.release(slug, org_id)
            if owned:
                await self.owners.give_up(collection, org_id, ObjectId())

    # -- recovery ------------------------------------------------------------------------

    async def recover_one(self, op: Document) -> bool:
        """Finish or undo an operation whose lease ran out; False if someone holds it."""
        now = utcnow()
        taken = await self.journal.acquire(op["_id"], owner=self.owner,
                                           token=uuid.uuid4().hex, now=now,
                                           lease_until=now + self.lease)
        if taken is None:
            return False
        log.warning("recovering %s of organization %s from phase %s",
                    taken["kind"], taken["organization_id"], taken["phase"])
        try:
            if taken["kind"] == CREATE:
                await self._undo_create(taken)
            elif taken["kind"] == RENAME:
                await self._complete_rename(taken)
            elif taken["kind"] == DELETE:
                await self._complete_delete(taken)
            elif taken["kind"] in self.recoverers:
                await self.recoverers[taken["kind"]](taken)
            else:
                await self._recover_hold(taken)
        except LeaseLost:
            return False
        return True

    async def recover(self) -> int:
        """Finish or undo every operation whose owner is gone; how many were handled."""
        handled = 0
        for op in await self.journal.stale(utcnow()):
            if await self._detached(functools.partial(self.recover_one, op)):
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

    async def settled(self) -> None:
        """Wait for the settling this process started (a command line exits only after)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    # The steps other journaled operations are built from (window.py, operations/restore.py).
    detached = _detached
    quiet = _quiet
    begin = _begin
    claim = _claim
    fail = _fail
    step = _step
    renew = _renew
    hold_and_mark = _hold_and_mark
