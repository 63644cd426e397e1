"""`org-service restore FILE [--as NAME | --replace] [--skip-conflicting-members]
[--dry-run]`: an organization back from a backup file, whole or not at all.

Two passes over the file. The first (`plan`) checks every section's count and SHA-256
against the manifest and looks up every member's email, writing nothing: a damaged file,
a name that is taken or members whose emails belong to another organization are refused
here (the dry run stops here and says what would be written). The second writes, as a
journaled lifecycle operation (kind "restore_backup", in `lifecycle_ops`, recovered like the others
by whoever finds its lease run out):

    started   the name is claimed and the collection name owned (a new organization), or
              the live organization held and marked `restoring` (--replace: its tenant
              requests get 503 + Retry-After until the end)
    claimed   staging: records into `restore_<op id>` (then its indexes), members into
              `restore_<op id>_members` and, to reserve their emails, into `members` in
              state `restoring` marked with the operation; audit into `restore_<op id>_audit`.
              The file is checked again as it is read: a file changed since the first pass
              stops here.
    committed (one write: the phase, with the organization document) - the commit point.
              Before it, recovery undoes everything (staging dropped, reserved members
              removed, name and collection given back, a replaced organization unmarked);
              after it, recovery finishes: the staging collection renamed into place (the
              replaced one dropped first), members and audit copied in by _id, the
              organization document written last, the operation's marks removed.

Restored members keep their ids (not with --as), password hashes and roles; their token
version goes up by one and their sessions are not restored, so no token issued before the
restore works after it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import bson
from bson import ObjectId
from bson.raw_bson import RawBSONDocument
from pymongo import ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, CollectionInvalid, OperationFailure

from org_service.audit.service import new_entry, single
from org_service.db import Document, utcnow
from org_service.models import email_key
from org_service.naming import OrganizationIdentity
from org_service.operations.archive import DECODE, BackupReader, counts
from org_service.operations.backup import Progress, raw_collection
from org_service.operations.operator import AUDIT_LOG, Operator, OperatorError
from org_service.organizations.errors import Busy, CollectionTaken, NameTaken, Stale
from org_service.organizations.lifecycle import CLAIMED, LifecycleManager
from org_service.organizations.repository import NAMESPACE_EXISTS
from org_service.organizations.schemas import ACTIVE, RESTORING
from org_service.organizations.window import operation_request

# Not "restore": that is the restore window's own kind (organizations/window.py).
RESTORE = "restore_backup"
COMMITTED = "committed"
ORIGINAL, AS_NEW, REPLACE = "original", "as", "replace"
STAGING_PREFIX = "restore_"
BATCH = 1000
LOOKUP_BATCH = 500
MARK = "restore_op"
# Noted on a member by the sessions it ended; those sessions are not restored.
NOT_RESTORED = ("ended_sessions",)


def staging(op_id: ObjectId) -> tuple[str, str, str]:
    """The staging collections of a restore: records, members, audit."""
    base = f"{STAGING_PREFIX}{op_id}"
    return base, f"{base}_members", f"{base}_audit"


@dataclass
class Plan:
    """What a restore will write: the dry run prints it, the restore follows it."""

    path: str
    mode: str
    source: Document  # the header's organization: id, name, slug, collection_name
    organization_id: ObjectId
    identity: OrganizationIdentity
    manifest: Document = field(default_factory=dict)
    conflicts: dict[str, str] = field(default_factory=dict)  # email -> its organization
    conflicting_ids: set[ObjectId] = field(default_factory=set)
    indexes: list[str] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)
    # When the organization was deleted, if its parked copy is purged to make way.
    purges_parked: datetime | None = None

    def view(self) -> Document:
        sections = counts(self.manifest)
        return {
            "file": self.path, "mode": self.mode,
            "backup": {"organization": self.source, "created_at":
                       self.manifest["created_at"].isoformat(),
                       "service_version": self.manifest["service_version"],
                       "counts": sections},
            "organization": {"id": str(self.organization_id), "name": self.identity.name,
                             "slug": self.identity.slug,
                             "collection_name": self.identity.collection},
            "members": sections["members"] - len(self.conflicts),
            "skipped_members": sorted(self.conflicts),
            "records": sections["records"],
            "indexes": self.indexes,
            "policies": self.policies,
            "audit_entries": sections["audit"],
            "purges_parked_copy_deleted_at": (self.purges_parked.isoformat()
                                              if self.purges_parked else None),
        }


class Restorer:
    def __init__(self, operator: Operator) -> None:
        self.operator = operator
        self.lifecycle: LifecycleManager = operator.lifecycle
        self.db = operator.db

    # -- first pass: check the file, plan, write nothing ------------------------------------

    async def plan(self, path: str, *, as_name: str | None = None, replace: bool = False,
                   skip_conflicting: bool = False) -> Plan:
        with BackupReader(path) as reader:
            source = reader.header()["organization"]
            plan = await self._target(path, source, as_name, replace)
            emails: dict[str, tuple[ObjectId, str]] = {}
            for section, raw in reader.frames():
                if section == "members":
                    member = bson.decode(raw, codec_options=DECODE)
                    emails[member["email_key"]] = (member["_id"], member["email"])
                    if len(emails) >= LOOKUP_BATCH:
                        await self._conflicts(plan, emails)
                        emails = {}
                elif section == "indexes":
                    plan.indexes.append(bson.decode(raw, codec_options=DECODE)["name"])
                elif section == "policies":
                    plan.policies.append(bson.decode(raw, codec_options=DECODE)["kind"])
            await self._conflicts(plan, emails)
            assert reader.manifest is not None
            plan.manifest = reader.manifest
        if plan.conflicts and not skip_conflicting:
            listed = ", ".join(f"{email} ({org})" for email, org in sorted(
                plan.conflicts.items()))
            raise OperatorError(
                f"{len(plan.conflicts)} member(s) have emails that belong to another "
                f"organization: {listed}. Nothing was written; --skip-conflicting-members "
                "restores the others")
        return plan

    async def _target(self, path: str, source: Document, as_name: str | None,
                      replace: bool) -> Plan:
        original = ObjectId(source["id"])
        orgs = self.operator.organizations
        if replace:
            live = await orgs.get(original, active_only=False)
            if live is None:
                raise OperatorError(
                    f"--replace replaces the organization the backup was taken of (id "
                    f"{original}), and there is none: restore without --replace")
            return Plan(path, REPLACE, source, original,
                        OrganizationIdentity.of(live["organization_name"]))
        if as_name is not None:
            identity = OrganizationIdentity.of(as_name)
            await self._name_free(identity, f"'{as_name}'")
            return Plan(path, AS_NEW, source, ObjectId(), identity)
        live = await orgs.get(original, active_only=False)
        if live is not None:
            raise OperatorError(
                f"the organization of this backup ('{live['organization_name']}', id "
                f"{original}) exists: --replace replaces it, --as NAME restores a copy")
        identity = OrganizationIdentity.of(source["name"])
        await self._name_free(identity, f"the backup's name '{source['name']}'",
                              hint=" (--as NAME restores it under another)",
                              organization_id=original)
        # Deleted and still in its restore window: the file wins, and the parked copy is
        # purged first (`restore-deleted` brings back the parked copy instead).
        parked = await self.operator.deleted.get(original)
        return Plan(path, ORIGINAL, source, original, identity,
                    purges_parked=parked["deleted_at"] if parked else None)

    async def _name_free(self, identity: OrganizationIdentity, said: str, hint: str = "",
                         organization_id: ObjectId | None = None) -> None:
        """Refuse a name another organization has. The organization being restored may
        still hold its own name's claim while its delete settles: the restore's claim
        waits for that (LifecycleManager.claim)."""
        holder = await self.lifecycle.claims.owner(identity.slug)
        org = await self.operator.organizations.get_by_slug(identity.slug, active_only=False)
        if org is not None or (holder is not None
                               and holder["organization_id"] != organization_id):
            raise OperatorError(f"{said} is taken by another organization{hint}")

    async def _conflicts(self, plan: Plan, emails: dict[str, tuple[ObjectId, str]]) -> None:
        if not emails:
            return
        async for holder in self.db["members"].find(
                {"email_key": {"$in": list(emails)}},
                {"email_key": 1, "organization_id": 1, MARK: 1}):
            if (plan.mode == REPLACE and holder["organization_id"] == plan.organization_id
                    and MARK not in holder):
                continue  # the live organization's own member: replaced with it
            member_id, email = emails[holder["email_key"]]
            org = await self.operator.organizations.get(holder["organization_id"],
                                                        active_only=False)
            plan.conflicts[email] = org["organization_name"] if org else str(
                holder["organization_id"])
            plan.conflicting_ids.add(member_id)

    # -- second pass: write, journaled --------------------------------------------------------

    async def restore(self, plan: Plan, progress: Progress | None = None) -> Document:
        """Write what `plan` says; the restored organization document."""
        lifecycle, org_id = self.lifecycle, plan.organization_id
        if plan.purges_parked is not None:
            # A crash between the purge and the restore leaves the organization purged: the
            # same command run again restores it (then as "purged").
            await self.operator.window.purge(org_id)
        if plan.mode == ORIGINAL:
            await lifecycle.journal.forget_done(org_id)
        try:
            op = await lifecycle.begin(
                RESTORE, org_id, mode=plan.mode, name=plan.identity.name,
                slug=plan.identity.slug, collection_name=plan.identity.collection,
                source_file=plan.path, backup_created_at=plan.manifest["created_at"])
        except Busy:
            raise OperatorError("the organization has a lifecycle operation in flight: try "
                                "again in a moment") from None
        try:
            await self._take(op, plan)
            await lifecycle.journal.advance(op, phase=CLAIMED)
            organization = await self._stage(op, plan, progress or (lambda *_: None))
            if plan.mode == REPLACE:
                # Requests that resolved the collection before the mark may still write to
                # it until settle_after: only then is it replaced.
                wait = (op["settle_after"] - utcnow()).total_seconds()
                if wait > 0:
                    await asyncio.sleep(wait)
            await lifecycle.step("staged", op)
            await lifecycle.journal.advance(op, phase=COMMITTED, organization=organization)
        except BaseException:
            await lifecycle.fail(op, self.undo)
            raise
        try:
            await lifecycle.step("committed", op)
            await self.finish(op)
        except BaseException:
            await lifecycle.fail(op, self.finish)
            raise
        return organization

    async def _take(self, op: Document, plan: Plan) -> None:
        lifecycle, org_id, identity = self.lifecycle, plan.organization_id, plan.identity
        try:
            if plan.mode == REPLACE:
                live = await lifecycle.organizations.get(org_id)
                if live is None or live["slug"] != identity.slug:
                    raise Stale()
                await lifecycle.hold_and_mark(op, live, RESTORING)
                await lifecycle.journal.advance(op, settle_after=utcnow() + lifecycle.fence)
                return
            await lifecycle.claim(identity, org_id)
            if (not await lifecycle.owners.take(identity.collection, org_id, op["_id"])
                    or await lifecycle.collections.exists(identity.collection)):
                raise CollectionTaken(identity.collection)
        except NameTaken:
            raise OperatorError(f"'{identity.name}' is taken by another organization "
                                "(since the check)") from None
        except CollectionTaken:
            raise OperatorError(f"a collection {identity.collection} exists already and "
                                "belongs to no organization (see `org-service check`)"
                                ) from None
        except Stale:
            raise OperatorError("the organization changed (renamed, deleted or busy) since "
                                "the check: try again") from None

    async def _stage(self, op: Document, plan: Plan, progress: Progress) -> Document:
        records_name, members_name, audit_name = staging(op["_id"])
        records = self._raw(records_name)
        reserve = await self._reserved(plan)
        ids: dict[ObjectId, ObjectId] = {}
        organization: Document = {}
        indexes: list[Document] = []
        policies: Document = {}
        batch: list[Any] = []
        written = {"records": 0}
        expected = counts(plan.manifest)
        await self._create(records_name)

        async def flush(section: str) -> None:
            nonlocal batch
            if not batch:
                return
            if section == "records":
                await records.insert_many(batch, ordered=False)
                written["records"] += len(batch)
                progress("records", written["records"], expected["records"])
                await self.lifecycle.step("staging", op)
            elif section == "members":
                await self._stage_members(op, batch, reserve, plan)
            else:
                await self._raw(audit_name).insert_many(batch, ordered=False)
            batch = []

        with BackupReader(plan.path) as reader:
            if reader.header()["organization"] != plan.source:
                raise OperatorError(f"{plan.path} changed since it was checked")
            section_before = ""
            for section, raw in reader.frames():
                if section != section_before:
                    await flush(section_before)
                    section_before = section
                if section == "organization":
                    organization = bson.decode(raw, codec_options=DECODE)
                elif section == "members":
                    member = self._member(bson.decode(raw, codec_options=DECODE), op, plan,
                                          ids)
                    if member is not None:
                        batch.append(member)
                elif section == "indexes":
                    indexes.append(bson.decode(raw, codec_options=DECODE))
                elif section == "policies":
                    policy = bson.decode(raw, codec_options=DECODE)
                    policies[policy["kind"]] = {"read": policy["read"],
                                                "write": policy["write"]}
                elif section == "records":
                    batch.append(RawBSONDocument(raw))
                else:
                    batch.append(self._audit(raw, plan, ids))
                if len(batch) >= BATCH:
                    await flush(section)
            await flush(section_before)
        await self._create(members_name)
        await self._create(audit_name)
        for spec in indexes:
            options = {k: v for k, v in spec.items() if k != "key"}
            await self.db[records_name].create_index(list(spec["key"].items()), **options)
        return self._organization(organization, policies, plan, ids)

    def _raw(self, name: str) -> AsyncCollection[RawBSONDocument]:
        return raw_collection(self.operator, name)

    async def _create(self, name: str) -> None:
        """Create a staging collection (present even when empty, so a finished restore
        can tell the rename happened); fine if it exists (a retried step)."""
        try:
            await self.db.create_collection(name)
        except CollectionInvalid:
            return
        except OperationFailure as exc:
            if exc.code != NAMESPACE_EXISTS:
                raise

    async def _reserved(self, plan: Plan) -> set[Any]:
        """--replace: the ids and email keys the live organization's members hold now (it
        is marked, so they stay): its own members need no reservation, they are replaced."""
        if plan.mode != REPLACE:
            return set()
        held: set[Any] = set()
        async for member in self.db["members"].find(
                {"organization_id": plan.organization_id, MARK: {"$exists": False}},
                {"email_key": 1}):
            held |= {member["_id"], member["email_key"]}
        return held

    def _member(self, member: Document, op: Document, plan: Plan,
                ids: dict[ObjectId, ObjectId]) -> Document | None:
        if member["_id"] in plan.conflicting_ids:
            return None

        def mapped(member_id: ObjectId | None) -> ObjectId | None:
            if member_id is None or member_id in plan.conflicting_ids:
                return None
            return ids.setdefault(member_id, ObjectId()) if plan.mode == AS_NEW else member_id

        for name in NOT_RESTORED:
            member.pop(name, None)
        member.update({"_id": mapped(member["_id"]), "manager_id": mapped(
            member.get("manager_id")), "organization_id": plan.organization_id,
            "token_version": int(member.get("token_version") or 0) + 1, MARK: op["_id"]})
        if email_key(member["email"]) != member["email_key"]:
            member["email_key"] = email_key(member["email"])
        return member

    async def _stage_members(self, op: Document, members: list[Document], reserve: set[Any],
                             plan: Plan) -> None:
        await self.db[staging(op["_id"])[1]].insert_many(members, ordered=False)
        pending = [{**member, "state": RESTORING} for member in members
                   if member["_id"] not in reserve and member["email_key"] not in reserve]
        if not pending:
            return
        try:
            await self.db["members"].insert_many(pending, ordered=False)
        except BulkWriteError as exc:
            taken = [error["op"]["email"] for error in exc.details.get("writeErrors", [])
                     if error.get("code") == 11000]
            if not taken:
                raise
            raise OperatorError(
                f"email(s) taken by another organization since the check: "
                f"{', '.join(sorted(taken))}. Nothing was written") from None

    def _audit(self, raw: bytes, plan: Plan, ids: dict[ObjectId, ObjectId]) -> Any:
        if plan.mode != AS_NEW:
            return RawBSONDocument(raw)
        entry = bson.decode(raw, codec_options=DECODE)
        # A copy is a new organization's history: new ids, and no collapse key (it would
        # meet the original's entry in the unique index).
        entry.pop("collapse_key", None)
        entry.update(_id=ObjectId(), organization_id=plan.organization_id)
        if entry.get("admin_id") in ids:
            entry["admin_id"] = ids[entry["admin_id"]]
        return entry

    def _organization(self, org: Document, policies: Document, plan: Plan,
                      ids: dict[ObjectId, ObjectId]) -> Document:
        admin = org.get("admin_user_id")
        if plan.mode == AS_NEW and admin is not None:
            old = ObjectId(admin)
            admin = str(ids[old]) if old in ids else None
        org.update(_id=plan.organization_id, organization_name=plan.identity.name,
                   slug=plan.identity.slug, collection_name=plan.identity.collection,
                   state=ACTIVE, admin_user_id=admin, record_policies=policies,
                   updated_at=utcnow())
        if plan.mode == AS_NEW:
            org.update(created_at=org["updated_at"])
            org.pop("previous_slug", None)
        return org

    # -- after the commit point: finish; before it: undo (both idempotent) -------------------

    async def finish(self, op: Document) -> None:
        org_id, collection, op_id = op["organization_id"], op["collection_name"], op["_id"]
        records, members, audit = staging(op_id)
        lifecycle = self.lifecycle
        await lifecycle.renew(op)
        if op["mode"] == REPLACE:
            if await lifecycle.collections.exists(records):
                if not await lifecycle.owners.held(collection, org_id, op_id):
                    raise Stale()
                await lifecycle.collections.drop(collection)
                await lifecycle.collections.rename(records, collection)
            await self.db["members"].delete_many({"organization_id": org_id,
                                                  MARK: {"$ne": op_id}})
        else:
            await lifecycle.collections.move(records, collection)
        await self._copy(members, self.db["members"])
        await self._copy(audit, self.db[AUDIT_LOG])
        # Written once (its id is the operation's), after the trail it joins.
        await self.operator.window.audit.put(single(new_entry(
            operation_request(op), "organization.restore", "success", at=utcnow(),
            organization_id=org_id, target=op["name"], entry_id=op_id,
            reason=(f"restored ({op['mode']}) from the backup {op['source_file']} "
                    f"taken {op['backup_created_at']:%Y-%m-%dT%H:%M:%SZ}"))))
        await lifecycle.organizations.collection.replace_one(
            {"_id": org_id}, op["organization"], upsert=True)
        await self.db["members"].update_many({MARK: op_id}, {"$unset": {MARK: ""}})
        await lifecycle.owners.let_go(collection, org_id, op_id)
        await lifecycle.journal.finish(op)

    async def _copy(self, source: str, target: AsyncCollection[Document]) -> None:
        batch: list[ReplaceOne[Document]] = []
        async for doc in self.db[source].find({}):
            batch.append(ReplaceOne({"_id": doc["_id"]}, doc, upsert=True))
            if len(batch) >= BATCH:
                await target.bulk_write(batch, ordered=False)
                batch = []
        if batch:
            await target.bulk_write(batch, ordered=False)
        await self.db.drop_collection(source)

    async def undo(self, op: Document) -> None:
        org_id, op_id = op["organization_id"], op["_id"]
        lifecycle = self.lifecycle
        for name in staging(op_id):
            await self.db.drop_collection(name)
        await self.db["members"].delete_many({MARK: op_id})
        if "collection_name" in op:
            if op["mode"] == REPLACE:
                await lifecycle.organizations.update(
                    org_id, {"state": ACTIVE}, expect={"state": RESTORING, "slug": op["slug"]})
                await lifecycle.owners.let_go(op["collection_name"], org_id, op_id)
            else:
                await lifecycle.owners.give_up(op["collection_name"], org_id, op_id)
                if await lifecycle.organizations.get(org_id, active_only=False) is None:
                    await lifecycle.claims.release(op["slug"], org_id)
        await lifecycle.journal.finish(op)

    async def recover(self, op: Document) -> None:
        """Recovery (lifecycle.recover_one) of a restore whose process is gone."""
        if op["phase"] == COMMITTED:
            await self.finish(op)
        else:
            await self.undo(op)


def register(lifecycle: LifecycleManager, restorer: Restorer) -> None:
    lifecycle.recoverers[RESTORE] = restorer.recover


def staging_op_id(collection: str) -> ObjectId | None:
    """The operation a staging collection belongs to (None: not a staging name)."""
    if not collection.startswith(STAGING_PREFIX):
        return None
    head = collection[len(STAGING_PREFIX):][:24]
    return ObjectId(head) if ObjectId.is_valid(head) else None

