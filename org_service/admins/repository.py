"""All MongoDB access for organization admins (`admins`) and their failed logins."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from org_service.db import Document, object_id, utcnow
from org_service.errors import ServiceUnavailable
from org_service.models import email_key

# The joined document's id, set on the admin for the length of the tenant lookup.
ALSO_ID = "_also_id"


class AdminWithOrganization(NamedTuple):
    admin: Document
    organization: Document | None
    also: Document | None


class AdminRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db["admins"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index("email_key", unique=True, name="email_unique")
        await self.collection.create_index("organization_id", name="organization")

    async def insert(self, *, email: str, password_hash: str, organization_id: ObjectId
                     ) -> Document:
        now = utcnow()
        doc: Document = {
            "email": email,
            "email_key": email_key(email),
            "password_hash": password_hash,
            "organization_id": organization_id,
            "role": "org_admin",
            # Part of every token: bumping it revokes every token issued before.
            "token_version": 1,
            "created_at": now,
            "updated_at": now,
        }
        result = await self.collection.insert_one(doc)
        doc["_id"] = result.inserted_id
        return doc

    async def get(self, admin_id: str | ObjectId) -> Document | None:
        oid = admin_id if isinstance(admin_id, ObjectId) else object_id(admin_id)
        if oid is None:
            return None
        return await self.collection.find_one({"_id": oid})

    async def with_organization(self, admin_id: ObjectId,
                                also: tuple[str, Document] | None = None
                                ) -> AdminWithOrganization | None:
        """The admin (without the password hash) and, as `organization`, its organization
        (None if gone), in one round trip: every authenticated request starts here.

        `also` = (collection, filter) reads one document of another collection of this
        database in the same command, as `also` (None if there is none). The filter names
        the document's `_id`: the lookup joins on it, which is what keeps it an index read.
        A sub-pipeline `$match` alone is not one on SecantusDB: there it scanned the whole
        collection, some 40 ms a read at 2,000 documents."""
        pipeline: list[Document] = [
            {"$match": {"_id": admin_id}},
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
            return None
        admin = found[0]
        admin.pop(ALSO_ID, None)
        organization = next(iter(admin.pop("organization")), None)
        return AdminWithOrganization(admin, organization,
                                     next(iter(admin.pop("also", ())), None))

    async def get_by_email(self, email: str) -> Document | None:
        return await self.collection.find_one({"email_key": email_key(email)})

    async def first_of(self, organization_id: ObjectId) -> Document | None:
        return await self.collection.find_one({"organization_id": organization_id},
                                              sort=[("_id", 1)])

    async def set_credentials(self, admin_id: ObjectId, *, token_version: int,
                              email: str | None = None, password_hash: str | None = None
                              ) -> Document | None:
        """Change the credentials of the admin still at `token_version` (the version of the
        token that asked); None when another change revoked that token meanwhile."""
        changes: Document = {"updated_at": utcnow()}
        if email is not None:
            changes["email"] = email
            changes["email_key"] = email_key(email)
        if password_hash is not None:
            changes["password_hash"] = password_hash
        return await self.collection.find_one_and_update(
            {"_id": admin_id, "token_version": token_version},
            {"$set": changes, "$inc": {"token_version": 1}},
            return_document=ReturnDocument.AFTER,
        )

    async def delete_for(self, organization_id: ObjectId) -> int:
        result = await self.collection.delete_many({"organization_id": organization_id})
        return result.deleted_count


def last_attempt(counter: Document) -> datetime | None:
    """When the latest attempt a counter holds was made (None: a counter from before
    attempt times were kept)."""
    recent: list[datetime] = counter.get("recent") or []
    return max(recent, default=None)


def _previous_attempt(counter: Document) -> datetime | None:
    recent = counter.get("recent") or []
    return recent[-2] if len(recent) >= 2 else None


class LoginFailureRepository:
    """Attempt counters (`login_failures`: failed logins, and public creates), one per
    throttled key, each with the end of its window and the times of its last two attempts
    (`recent`); a TTL index sweeps the expired ones."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db["login_failures"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index("expires_at", expireAfterSeconds=0, name="expire")

    async def active(self, keys: list[str], now: datetime) -> list[Document]:
        # The TTL sweep runs about once a minute, so expiry is decided here, not by it.
        cursor = self.collection.find({"_id": {"$in": keys}, "expires_at": {"$gt": now}})
        return await cursor.to_list(None)

    async def add_failure(self, key: str, now: datetime, window: timedelta,
                          about: Document | None = None) -> Document:
        """Count one attempt atomically and return the counter as it is now, with
        `previous_at`: the time of the attempt counted before this one (None if none).
        `about` is stored with a new counter: whom it counts (see `clear_about`)."""
        # An expired window starts over; a live one keeps its end, so more attempts never
        # extend it.
        await self.collection.delete_one({"_id": key, "expires_at": {"$lte": now}})
        # Increment, else create; not one upsert: concurrent upserts of a new key may fail
        # with a duplicate key (MongoDB before 4.2) or, on SecantusDB, count the attempt yet
        # return no document. Of racing creators one inserts and the others increment.
        for _ in range(3):
            # `recent` keeps the times of the last two attempts, updated in the same atomic
            # step as the count: the one before this attempt is the next to last. (Not the
            # document before the update: on SecantusDB racing updates may all get the same.)
            counter: Document | None = await self.collection.find_one_and_update(
                {"_id": key},
                {"$inc": {"failures": 1}, "$push": {"recent": {"$each": [now], "$slice": -2}}},
                return_document=ReturnDocument.AFTER)
            if counter is not None:
                return {**counter, "previous_at": _previous_attempt(counter)}
            created = {**(about or {}), "_id": key, "failures": 1, "started_at": now,
                       "recent": [now], "expires_at": now + window}
            try:
                await self.collection.insert_one(created)
                return {**created, "previous_at": None}
            except DuplicateKeyError:
                continue  # another attempt created it first: increment that one
        # Not a DuplicateKeyError: that would answer 409 "already exists" to a login.
        raise ServiceUnavailable("Login attempts could not be counted; retry shortly",
                                 retry_after=1)

    async def refund(self, key: str) -> None:
        await self.collection.update_one({"_id": key, "failures": {"$gt": 0}},
                                         {"$inc": {"failures": -1}})

    async def clear(self, key: str) -> None:
        await self.collection.delete_one({"_id": key})

    async def clear_about(self, keys: list[str], now: datetime, *, address: str | None = None,
                          email: str | None = None) -> int:
        """Delete the live counters `keys` and every live counter about this client address
        or this email (its hashed key); how many. Expired ones count for nothing and are
        left to the TTL sweep."""
        about: list[Document] = [{"_id": {"$in": keys}}]
        if address is not None:
            about.append({"address": address})
        if email is not None:
            about.append({"email": email})
        result = await self.collection.delete_many({"$or": about, "expires_at": {"$gt": now}})
        return result.deleted_count

    async def all_active(self, now: datetime) -> list[Document]:
        cursor = self.collection.find({"expires_at": {"$gt": now}}).sort("expires_at", 1)
        return await cursor.to_list(None)
