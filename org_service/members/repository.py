"""All MongoDB access for the people of organizations (`members`).

One collection for everyone (owners, admins, managers, employees); an email is unique
across the service, case-insensitively (`email_key`, a unique index). Members replaced the
admins of the first version (`admins`): `migrate_admins` copies them at startup, and until
it has, a lookup that misses in `members` adopts the person from `admins` on the spot, so
nobody is locked out while it runs."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import NamedTuple

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from org_service.db import Document, object_id, utcnow
from org_service.models import email_key
from org_service.roles import Role

# The joined document's id, set on the member for the length of the tenant lookup.
ALSO_ID = "_also_id"
ACTIVE, SUSPENDED = "active", "suspended"
# Sessions noted as ended on a member at once (each for one access-token lifetime): far more
# than anyone ends in a quarter of an hour, and a bound on the member document.
ENDED_SESSIONS_MAX = 500
LEGACY_COLLECTION = "admins"
MIGRATION_ID = "admins_to_members"


class MemberWithOrganization(NamedTuple):
    member: Document
    organization: Document | None
    also: Document | None


def name_key(name: str | None) -> str | None:
    """The form of a name the prefix search matches (case-insensitive)."""
    return name.strip().casefold() if name else None


# Set on a member before the first email-change link is written (note_email_change).
EMAIL_CHANGE_ASKED = "email_change_asked"


class MemberRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db["members"]
        self.legacy = db[LEGACY_COLLECTION]
        self.migrations = db["migrations"]
        # Set once every admin of the first version is a member: misses stop looking there.
        self.migrated = False

    async def ensure_indexes(self) -> None:
        await self.collection.create_index("email_key", unique=True, name="email_unique")
        await self.collection.create_index([("organization_id", 1), ("_id", 1)],
                                           name="organization")
        for field in ("role", "state", "manager_id", "department", "name_key"):
            await self.collection.create_index([("organization_id", 1), (field, 1), ("_id", 1)],
                                               name=f"organization_{field}")

    async def insert(self, *, email: str, password_hash: str, organization_id: ObjectId,
                     role: str = Role.OWNER, name: str | None = None,
                     manager_id: ObjectId | None = None, title: str | None = None,
                     department: str | None = None, attributes: Document | None = None,
                     member_id: ObjectId | None = None,
                     invitation_id: ObjectId | None = None,
                     verified_at: datetime | None = None) -> Document:
        now = utcnow()
        doc: Document = {
            "_id": member_id or ObjectId(),
            "email": email,
            "email_key": email_key(email),
            "name": name,
            "name_key": name_key(name),
            "password_hash": password_hash,
            "organization_id": organization_id,
            "role": role,
            "state": ACTIVE,
            "manager_id": manager_id,
            "title": title,
            "department": department,
            "attributes": attributes or {},
            # Part of every token: bumping it revokes every token issued before.
            "token_version": 1,
            "created_at": now,
            "updated_at": now,
            "last_login_at": None,
            # When the email was proven (a verification link, an accepted invitation);
            # None until then. Absent on members from before verification: unverified too.
            "verified_at": verified_at,
        }
        if invitation_id is not None:
            # Whose acceptance made it: a retried or concurrent accept recognises its member.
            doc["invitation_id"] = invitation_id
        await self.collection.insert_one(doc)
        return doc

    # -- the admins of the first version -------------------------------------------------

    async def migrate_admins(self) -> int:
        """Copy every admin of the first version into `members` (idempotent: a copy never
        overwrites a member). The first admin of an organization, its creator, becomes its
        owner; any other, an admin. Returns how many were copied now."""
        if await self.migrations.find_one({"_id": MIGRATION_ID}):
            self.migrated = True
            return 0
        copied = 0
        # In _id order, an organization's first admin is its creator: one pass, no lookup.
        seen: set[ObjectId] = set()
        async for admin in self.legacy.find({}, sort=[("_id", 1)]):
            creator = admin["organization_id"] not in seen
            seen.add(admin["organization_id"])
            copied += await self._adopt(admin, creator=creator)
        await self.migrations.update_one(
            {"_id": MIGRATION_ID}, {"$setOnInsert": {"done_at": utcnow(), "copied": copied}},
            upsert=True)
        self.migrated = True
        return copied

    async def _adopt(self, admin: Document, *, creator: bool | None = None) -> int:
        if creator is None:  # adopted alone: whether it is its organization's first admin
            first = await self.legacy.find_one(
                {"organization_id": admin["organization_id"]}, sort=[("_id", 1)],
                projection={"_id": 1})
            creator = first is not None and first["_id"] == admin["_id"]
        role = Role.OWNER if creator else Role.ADMIN
        copy = {key: value for key, value in admin.items() if key != "_id"}
        copy.update(role=role, state=ACTIVE, name=admin.get("name"),
                    name_key=name_key(admin.get("name")), attributes={},
                    last_login_at=None, manager_id=None, title=None, department=None)
        try:
            result = await self.collection.update_one(
                {"_id": admin["_id"]}, {"$setOnInsert": copy}, upsert=True)
        except DuplicateKeyError:
            return 0  # its email belongs to a member created since: that one stands
        return 1 if result.upserted_id is not None else 0

    async def _adopt_where(self, query: Document) -> bool:
        """A miss in `members` while the migration has not finished: adopt the admin of
        the first version it may be (True when there was one)."""
        if self.migrated:
            return False
        admin = await self.legacy.find_one(query)
        if admin is None:
            return False
        await self._adopt(admin)
        return True

    # -- reads ---------------------------------------------------------------------------

    async def get(self, member_id: str | ObjectId) -> Document | None:
        oid = member_id if isinstance(member_id, ObjectId) else object_id(member_id)
        if oid is None:
            return None
        found = await self.collection.find_one({"_id": oid})
        if found is None and await self._adopt_where({"_id": oid}):
            found = await self.collection.find_one({"_id": oid})
        return found

    async def with_organization(self, member_id: ObjectId,
                                also: tuple[str, Document] | None = None
                                ) -> MemberWithOrganization | None:
        """The member (without the password hash) and, as `organization`, its organization
        (None if gone), in one round trip: every authenticated request starts here.

        `also` = (collection, filter) reads one document of another collection of this
        database in the same command, as `also` (None if there is none). The filter names
        the document's `_id`: the lookup joins on it, which is what keeps it an index read.
        A sub-pipeline `$match` alone is not one on SecantusDB: there it scanned the whole
        collection, some 40 ms a read at 2,000 documents."""
        pipeline: list[Document] = [
            {"$match": {"_id": member_id}},
            {"$project": {"password_hash": 0}},
            {"$lookup": {"from": "organizations", "localField": "organization_id",
                         "foreignField": "_id", "as": "organization"}},
        ]
        if also is not None:
            collection, query = also
            rest = {field: value for field, value in query.items() if field != "_id"}
            pipeline += [
                {"$set": {ALSO_ID: {"$literal": query["_id"]}}},
                {"$lookup": {"from": collection, "localField": ALSO_ID, "foreignField": "_id",
                             "pipeline": [{"$match": rest}], "as": "also"}},
            ]
        cursor = await self.collection.aggregate(pipeline)
        found = await cursor.to_list(1)
        if not found:
            if await self._adopt_where({"_id": member_id}):
                return await self.with_organization(member_id, also)
            return None
        member = found[0]
        member.pop(ALSO_ID, None)
        organization = next(iter(member.pop("organization")), None)
        return MemberWithOrganization(member, organization,
                                      next(iter(member.pop("also", ())), None))

    async def get_by_email(self, email: str) -> Document | None:
        key = email_key(email)
        found = await self.collection.find_one({"email_key": key})
        if found is None and await self._adopt_where({"email_key": key}):
            found = await self.collection.find_one({"email_key": key})
        return found

    async def first_of(self, organization_id: ObjectId) -> Document | None:
        return await self.collection.find_one({"organization_id": organization_id},
                                              sort=[("_id", 1)])

    async def set_credentials(self, member_id: ObjectId, *, token_version: int,
                              email: str | None = None, password_hash: str | None = None,
                              verified_at: datetime | None = None) -> Document | None:
        """Change the credentials of the member still at `token_version` (the version of the
        token or link that asked); None when another change revoked it meanwhile. An email
        is only ever set with the time it was verified (its link was just followed)."""
        changes: Document = {"updated_at": utcnow()}
        if email is not None:
            changes["email"] = email
            changes["email_key"] = email_key(email)
            changes["verified_at"] = verified_at
        if password_hash is not None:
            changes["password_hash"] = password_hash
        return await self.collection.find_one_and_update(
            {"_id": member_id, "token_version": token_version},
            {"$set": changes, "$inc": {"token_version": 1}},
            return_document=ReturnDocument.AFTER,
        )

    async def mark_verified(self, member_id: ObjectId, email: str, now: datetime
                            ) -> Document | None:
        """Verify the member's email if it is still `email` and not verified yet
        (compare-and-set: of two uses of one link, one finds it verified); None otherwise.
        A missing `verified_at` (a member from before verification) matches None too."""
        return await self.collection.find_one_and_update(
            {"_id": member_id, "email_key": email_key(email), "verified_at": None},
            {"$set": {"verified_at": now, "updated_at": now}},
            projection={"password_hash": 0}, return_document=ReturnDocument.AFTER)

    # -- one organization's people ---------------------------------------------------------

    async def find(self, query: Document, *, sort: list[tuple[str, int]], limit: int
                   ) -> list[Document]:
        cursor = self.collection.find(query, {"password_hash": 0}, sort=sort, limit=limit)
        return await cursor.to_list(None)

    async def get_in(self, organization_id: ObjectId, member_id: ObjectId
                     ) -> Document | None:
        return await self.collection.find_one(
            {"_id": member_id, "organization_id": organization_id}, {"password_hash": 0})

    async def change(self, member: Document, changes: Document, *,
                     bump_version: bool = False) -> Document | None:
        """Apply `changes` to the member if role, state and manager are still what `member`
        says (compare-and-set: a concurrent change makes this None, never a lost update)."""
        update: Document = {"$set": {**changes, "updated_at": utcnow()}}
        if bump_version:
            update["$inc"] = {"token_version": 1}
        return await self.collection.find_one_and_update(
            {"_id": member["_id"], "organization_id": member["organization_id"],
             "role": member["role"], "state": member.get("state", ACTIVE),
             "manager_id": member.get("manager_id")},
            update, projection={"password_hash": 0}, return_document=ReturnDocument.AFTER)

    async def note_email_change(self, member_id: ObjectId) -> None:
        """Mark the member as having asked for an email change once: until then no change
        can be waiting, and GET /me skips the link store (the tenant lookup reads the
        member anyway). A hint, never cleared: the link store stays the truth."""
        await self.collection.update_one({"_id": member_id, EMAIL_CHANGE_ASKED: {"$ne": True}},
                                         {"$set": {EMAIL_CHANGE_ASKED: True}})

    async def active_owners(self, organization_id: ObjectId) -> int:
        return await self.collection.count_documents(
            {"organization_id": organization_id, "role": Role.OWNER, "state": ACTIVE})

    async def reports_of(self, organization_id: ObjectId, managers: list[ObjectId]
                         ) -> list[Document]:
        cursor = self.collection.find(
            {"organization_id": organization_id, "manager_id": {"$in": managers}},
            {"password_hash": 0}, sort=[("_id", 1)])
        return await cursor.to_list(None)

    async def repoint_reports(self, organization_id: ObjectId, manager: ObjectId,
                              to: ObjectId | None) -> None:
        await self.collection.update_many(
            {"organization_id": organization_id, "manager_id": manager},
            {"$set": {"manager_id": to, "updated_at": utcnow()}})

    async def remove(self, member: Document) -> Document | None:
        """Delete the member if role and state are still what `member` says; the whole
        document as it was (to put back if the removal must be undone), else None."""
        return await self.collection.find_one_and_delete(
            {"_id": member["_id"], "organization_id": member["organization_id"],
             "role": member["role"], "state": member.get("state", ACTIVE)})

    async def delete_invited(self, member_id: ObjectId, invitation_id: ObjectId) -> None:
        """Take back a member an accept just made (its invitation was revoked meanwhile)."""
        await self.collection.delete_one({"_id": member_id, "invitation_id": invitation_id})

    async def restore(self, member: Document) -> None:
        """Put back a member removed a moment ago (a refused removal undone)."""
        with contextlib.suppress(DuplicateKeyError):
            await self.collection.insert_one(member)

    async def counts(self, organization_id: ObjectId) -> list[Document]:
        cursor = await self.collection.aggregate([
            {"$match": {"organization_id": organization_id}},
            {"$group": {"_id": {"role": "$role", "state": "$state"}, "count": {"$sum": 1}}},
        ])
        return await cursor.to_list(None)

    async def sessions_ended(self, member_id: ObjectId, session_ids: list[ObjectId], *,
                             until: datetime) -> None:
        """Note on the member that these sessions ended, until `until` (by when every access
        token they were given has expired): the tenant lookup reads the member anyway, so
        it refuses their access tokens at no cost. Entries past their time are dropped."""
        now = utcnow()
        await self.collection.update_one(
            {"_id": member_id}, {"$pull": {"ended_sessions": {"until": {"$lte": now}}}})
        await self.collection.update_one({"_id": member_id}, {"$push": {"ended_sessions": {
            "$each": [{"id": session_id, "until": until} for session_id in session_ids],
            "$slice": -ENDED_SESSIONS_MAX}}})

    async def logged_in(self, member_id: ObjectId) -> None:
        await self.collection.update_one({"_id": member_id},
                                         {"$set": {"last_login_at": utcnow()}})

    async def of_organization(self, organization_id: ObjectId) -> list[Document]:
        """Every member of the organization, whole (password hashes included): what a
        delete sets aside for its restore window."""
        return await self.collection.find({"organization_id": organization_id},
                                          sort=[("_id", 1)]).to_list(None)

    async def delete_ids(self, organization_id: ObjectId, ids: list[ObjectId]) -> None:
        if ids:
            await self.collection.delete_many(
                {"organization_id": organization_id, "_id": {"$in": ids}})

    async def holding(self, email_keys: list[str]) -> list[Document]:
        """The members that have these emails now (whoever's they are)."""
        return await self.collection.find(
            {"email_key": {"$in": email_keys}}, {"email": 1, "email_key": 1,
                                                  "organization_id": 1}).to_list(None)

    async def reinstate(self, member: Document) -> bool:
        """Put a restored member back (idempotent for a member already back); False when its
        email belongs to another member now."""
        try:
            await self.collection.insert_one(member)
            return True
        except DuplicateKeyError:
            found = await self.collection.find_one({"_id": member["_id"]}, {"_id": 1})
            return found is not None

    async def delete_for(self, organization_id: ObjectId) -> int:
        result = await self.collection.delete_many({"organization_id": organization_id})
        if not self.migrated:  # or the lookup's fallback would bring them back
            await self.legacy.delete_many({"organization_id": organization_id})
        return result.deleted_count


