"""The restore window of deleted organizations: purge once it is over, restore within it.

A delete with DELETION_GRACE_DAYS > 0 parks the organization (lifecycle.py): its collection
becomes parked_<id>, its document and members wait in `deleted_organizations` and
`deleted_members`. Two operations act on a parked organization, each journaled in the
organization's slot of `lifecycle_ops` like create, rename and delete (one at a time; a
crash is finished or undone by whoever takes the lapsed entry over):

- purge    started -> purging -> (entry removed)                 always completed once marked
- restore  started -> claimed -> collection -> (entry removed)    completed once its collection
                                                                  may have moved, else undone

Which of a purge and a restore gets the organization is decided twice by the database: the
journal slot (one operation per organization) and then a compare-and-set of the parked
document's state (parked -> purging | restoring, with the operation's id). A restore takes
its name the way a create does (slug_claims, then tenant_collections), so a create of the
same name racing it is decided by the same unique index.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from bson import ObjectId

from org_service.audit.repository import AuditRepository
from org_service.audit.schemas import AuditAction
from org_service.audit.service import RequestInfo, new_entry, single
from org_service.db import Document, utcnow
from org_service.naming import OrganizationIdentity
from org_service.organizations.errors import (
    Busy,
    CollectionTaken,
    EmailsTaken,
    Inconsistent,
    LifecycleError,
    NotParked,
)
from org_service.organizations.lifecycle import CLAIMED, COLLECTION, STARTED, LifecycleManager
from org_service.organizations.repository import PARKED, PURGING, RESTORING
from org_service.organizations.schemas import ACTIVE
from org_service.organizations.schemas import RESTORING as ORG_RESTORING

log = logging.getLogger(__name__)

PURGE, RESTORE = "purge", "restore"
PURGING_PHASE = "purging"
PURGE_ACTION: AuditAction = "organization.purge"
# What a parked document carries beyond the organization's own fields.
WINDOW_FIELDS = ("state", "op_id", "parked_collection", "deleted_at", "purge_after",
                 "deleted_by")


@dataclass(frozen=True, slots=True)
class Purged:
    organization_id: ObjectId
    organization_name: str
    records: int
    members: int
    audit_entries: int


@dataclass(frozen=True, slots=True)
class Restored:
    organization_id: ObjectId
    organization_name: str
    collection_name: str
    members: int
    skipped: list[str] = field(default_factory=list)


def operation_request(op: Document) -> RequestInfo:
    # No request: the entry's request id names the journal operation that wrote it.
    return RequestInfo(client_address=None, request_id=f"{op['kind']}:{op['_id']}")


class RestoreWindow:
    def __init__(self, lifecycle: LifecycleManager, audit: AuditRepository) -> None:
        self.lifecycle = lifecycle
        self.deleted = lifecycle.deleted
        self.audit = audit
        lifecycle.recoverers[PURGE] = self._recover_purge
        lifecycle.recoverers[RESTORE] = self._recover_restore

    async def _take_slot(self, kind: str, organization_id: ObjectId, *, patient: bool,
                         **fields: object) -> Document:
        """The organization's journal slot: the delete that parked it has settled (waited
        for), and its finished record, which answered repeats of the delete, is dropped
        (no token can repeat it now)."""
        if not await self.lifecycle.quiet(organization_id, patient=patient):
            raise Busy()
        await self.lifecycle.journal.forget_done(organization_id)
        return await self.lifecycle.begin(kind, organization_id, patient=patient, **fields)

    # -- purge -----------------------------------------------------------------------------

    async def purge_due(self, now: datetime | None = None) -> list[Purged]:
        """Purge every organization whose window is over; one that another process is
        purging or restoring right now is left to it."""
        now = now or utcnow()
        purged = []
        for doc in await self.deleted.due(now):
            try:
                done = await self.purge(doc["_id"], now)
            except Busy:  # another process purges or restores it right now
                continue
            except LifecycleError as exc:
                log.warning("purge of organization %s left for the next sweep: %r",
                            doc["_id"], exc)
                continue
            if done is not None:
                purged.append(done)
        return purged

    async def purge(self, organization_id: ObjectId, now: datetime | None = None
                    ) -> Purged | None:
        """Purge the organization if it is parked and due at `now` (with no `now`: parked,
        due or not, for a restore from a backup that replaces it); None if it is not (any
        more: restored or purged by someone else meanwhile)."""
        lifecycle = self.lifecycle
        expect: Document = {"state": PARKED}
        if now is not None:
            expect["purge_after"] = {"$lte": now}

        async def run() -> Purged | None:
            # The sweep (not patient) leaves an organization a restore holds to the next
            # round; an operator's purge waits for the delete to settle.
            op = await self._take_slot(PURGE, organization_id, patient=now is None)
            try:
                doc = await self.deleted.mark(organization_id, expect=expect, state=PURGING,
                                              op_id=op["_id"])
                if doc is None:
                    await lifecycle.journal.finish(op)
                    return None
                return await self._purge_forward(op, doc)
            except BaseException:
                await lifecycle.fail(op, self._recover_purge)
                raise

        return await lifecycle.detached(run)

    async def _purge_forward(self, op: Document, doc: Document | None) -> Purged:
        lifecycle, org_id = self.lifecycle, op["organization_id"]
        if op["phase"] == STARTED:
            assert doc is not None
            parked = doc["parked_collection"]
            # Counted before anything goes, for the one entry that says what went.
            await lifecycle.journal.advance(
                op, phase=PURGING_PHASE, name=doc["organization_name"], parked=parked,
                deleted_at=doc["deleted_at"], deleted_by=doc.get("deleted_by"),
                records=await lifecycle.collections.count(parked),
                members=await self.deleted.count_members(org_id),
                audit_entries=await self.audit.collection.count_documents(
                    {"organization_id": org_id, "action": {"$ne": PURGE_ACTION}}))
        await lifecycle.step("counted", op)
        await lifecycle.renew(op)
        await lifecycle.collections.drop(op["parked"])
        await lifecycle.step("dropped", op)
        await self.deleted.forget_members(org_id)
        await lifecycle.invitations.delete_of(org_id)
        await lifecycle.outbox.delete_of(org_id)
        await self.audit.delete_of(org_id, keep_action=PURGE_ACTION)
        # Kept with the organization's id (the purge above spares it) for AUDIT_RETENTION_DAYS
        # like any entry: the last word on an organization nobody can reach any more.
        now = utcnow()
        await self.audit.put(single(new_entry(
            operation_request(op), PURGE_ACTION, "success", at=now, organization_id=org_id,
            admin_id=op.get("deleted_by"), target=op["name"], entry_id=op["_id"],
            reason=(f"deleted {op['deleted_at']:%Y-%m-%dT%H:%M:%SZ}, purged "
                    f"{now:%Y-%m-%dT%H:%M:%SZ} after its restore window: collection "
                    f"{op['parked']} ({op['records']} records), {op['members']} members, "
                    f"{op['audit_entries']} audit entries"))))
        await self.deleted.forget(org_id, op["_id"])
        await lifecycle.journal.finish(op)
        log.warning("purged deleted organization %s (%s)", org_id, op["name"])
        return Purged(org_id, op["name"], op["records"], op["members"], op["audit_entries"])

    async def _recover_purge(self, op: Document) -> None:
        """Once the parked document is marked by this purge it goes all the way; before,
        nothing happened."""
        doc = await self.deleted.get(op["organization_id"])
        if op["phase"] == STARTED and (doc is None or doc.get("op_id") != op["_id"]):
            await self.lifecycle.journal.finish(op)
            return
        await self._purge_forward(op, doc)

    # -- restore ---------------------------------------------------------------------------

    async def restore(self, organization_id: ObjectId, *, as_name: str | None = None,
                      skip_conflicting_members: bool = False) -> Restored:
        """Bring a parked organization back: under its old name, or `as_name`. Its members
        come back with their passwords but a new token version (every token from before
        the delete stays dead); those whose emails another organization has now are
        refused (EmailsTaken) unless skipped."""
        lifecycle = self.lifecycle
        parked = await self.deleted.get(organization_id)
        if parked is None:
            raise NotParked(organization_id, "it was never deleted, or was purged or "
                            "restored already")
        to = OrganizationIdentity.of(as_name or parked["organization_name"])

        async def run() -> Restored:
            # Patient: an operator may restore right after the delete, still settling.
            op = await self._take_slot(RESTORE, organization_id, patient=True,
                                       to_name=to.name,
                                       to_slug=to.slug, to_collection=to.collection,
                                       skip=skip_conflicting_members)
            try:
                doc = await self.deleted.mark(organization_id, expect={"state": PARKED},
                                              state=RESTORING, op_id=op["_id"])
                if doc is None:  # the undo below gives the slot back
                    raise NotParked(organization_id, "it is being purged, or was purged or "
                                    "restored meanwhile")
                await lifecycle.journal.advance(op, parked=doc["parked_collection"])
                await lifecycle.step("journaled", op)
                skipped = await self._claim(op, doc)
                await lifecycle.journal.advance(op, phase=COLLECTION, skipped=skipped)
            except BaseException:
                await lifecycle.fail(op, self._undo_restore)
                raise
            try:
                return await self._restore_forward(op)
            except BaseException:
                await lifecycle.fail(op, self._recover_restore)
                raise

        return await lifecycle.detached(run)

    async def _claim(self, op: Document, doc: Document) -> list[str]:
        """Everything but the collection: the name, the organization (invisible), its
        members. The emails skipped (taken by other organizations)."""
        lifecycle, org_id = self.lifecycle, op["organization_id"]
        members = await self.deleted.members_of(org_id)
        holders = await lifecycle.members.holding([m["email_key"] for m in members])
        taken = {h["email_key"] for h in holders if h["organization_id"] != org_id}
        emails = sorted(m["email"] for m in members if m["email_key"] in taken)
        if emails and not op["skip"]:
            raise EmailsTaken(emails)
        identity = OrganizationIdentity(op["to_name"], op["to_slug"], op["to_collection"])
        await lifecycle.claim(identity, org_id)
        if not await lifecycle.owners.take(identity.collection, org_id, op["_id"]):
            raise CollectionTaken(identity.collection)
        if await lifecycle.collections.exists(identity.collection):
            raise CollectionTaken(identity.collection)
        if not await lifecycle.collections.exists(op["parked"]):
            raise Inconsistent(f"the parked collection {op['parked']} is missing")
        await lifecycle.journal.advance(op, phase=CLAIMED)
        await lifecycle.step("claimed", op)
        org = {key: value for key, value in doc.items() if key not in WINDOW_FIELDS}
        org.update(organization_name=identity.name, slug=identity.slug,
                   collection_name=identity.collection, state=ORG_RESTORING,
                   updated_at=utcnow())
        if identity.slug != doc["slug"]:
            org["previous_slug"] = None  # not a rename: no retry of one can name the old name
        await lifecycle.organizations.put_back(org)
        skipped = list(emails)
        for member in members:
            if member["email_key"] in taken:
                continue
            # A new token version: whatever was issued before the delete stays dead.
            back = {**member, "token_version": member.get("token_version", 1) + 1,
                    "updated_at": utcnow()}
            if not await lifecycle.members.reinstate(back):  # taken since the check
                if not op["skip"]:
                    raise EmailsTaken([member["email"]])
                skipped.append(member["email"])
        return sorted(skipped)

    async def _restore_forward(self, op: Document) -> Restored:
        lifecycle, org_id, to = self.lifecycle, op["organization_id"], op["to_collection"]
        await lifecycle.renew(op)
        if not await lifecycle.collections.move(op["parked"], to) \
                and not await lifecycle.collections.exists(to):
            raise Inconsistent(f"neither {op['parked']} nor {to} exists")
        await lifecycle.step("moved", op)
        await lifecycle.organizations.update(org_id, {"state": ACTIVE},
                                             expect={"state": ORG_RESTORING})
        await lifecycle.owners.let_go(to, org_id, op["_id"])
        members = await lifecycle.members.counts(org_id)
        count = sum(group["count"] for group in members)
        skipped = op.get("skipped") or []
        await self.audit.put(single(new_entry(
            operation_request(op), "organization.restore", "success", at=utcnow(),
            organization_id=org_id, target=op["to_name"], entry_id=op["_id"],
            reason=(f"restored from {op['parked']} as {to} with {count} members"
                    + (f"; left out (emails taken): {', '.join(skipped)}" if skipped
                       else "")))))
        await self.deleted.forget(org_id, op["_id"])
        await lifecycle.journal.finish(op)
        return Restored(org_id, op["to_name"], to, count, skipped)

    async def _undo_restore(self, op: Document) -> None:
        """Before the collection moved: take back what the restore wrote, park it again."""
        lifecycle, org_id = self.lifecycle, op["organization_id"]
        org = await lifecycle.organizations.get(org_id, active_only=False)
        if org is not None and org["state"] == ORG_RESTORING:
            await lifecycle.members.delete_for(org_id)
            await lifecycle.organizations.delete(org_id, state=ORG_RESTORING)
        if org is None or org["state"] == ORG_RESTORING:
            await lifecycle.owners.give_up(op["to_collection"], org_id, op["_id"])
            await lifecycle.claims.release(op["to_slug"], org_id)
        await self.deleted.mark(org_id, expect={"op_id": op["_id"]}, state=PARKED,
                                op_id=None)
        await lifecycle.journal.finish(op)

    async def _recover_restore(self, op: Document) -> None:
        if op["phase"] != COLLECTION:
            await self._undo_restore(op)
            return
        try:
            await self._restore_forward(op)
        except Inconsistent as exc:  # nothing moved: parked again, for an operator to see
            log.error("restore %s of organization %s stopped: %s; undone", op["_id"],
                      op["organization_id"], exc)
            await self._undo_restore(op)
