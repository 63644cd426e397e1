"""All MongoDB access for organizations: the `organizations` collection in the master
database and the tenant collections it points to."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, ReplaceOne, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid, DuplicateKeyError, OperationFailure

from org_service.db import Document, object_id, utcnow
from org_service.organizations.errors import LeaseLost
from org_service.organizations.schemas import ACTIVE

FOLD_BATCH = 500
# Default indexes of every tenant collection, created with it (records are addressed by
# kind + id and listed by kind + creation time).
TENANT_INDEXES: list[tuple[list[tuple[str, int]], dict[str, Any]]] = [
    ([("kind", ASCENDING), ("_id", ASCENDING)], {"name": "kind_id"}),
    ([("kind", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)],
     {"name": "kind_created"}),
]

NAMESPACE_EXISTS = 48
NAMESPACE_NOT_FOUND = 26


class OrganizationRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.collection = db["organizations"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index("slug", unique=True, name="slug_unique")
        await self.collection.create_index(
            "collection_name", unique=True, name="collection_name_unique"
        )

    async def insert(self, *, name: str, slug: str, collection_name: str, state: str,
                     organization_id: ObjectId | None = None) -> Document:
        now = utcnow()
        doc: Document = {
            "_id": organization_id or ObjectId(),
            "organization_name": name,
            "slug": slug,
            "collection_name": collection_name,
            "admin_user_id": None,
            "state": state,
            "created_at": now,
            "updated_at": now,
        }
        result = await self.collection.insert_one(doc)
        doc["_id"] = result.inserted_id
        return doc

    async def get(self, organization_id: str | ObjectId, *, active_only: bool = True
                  ) -> Document | None:
        oid = organization_id if isinstance(organization_id, ObjectId) else object_id(
            organization_id)
        if oid is None:
            return None
        query: Document = {"_id": oid}
        if active_only:
            query["state"] = ACTIVE
        return await self.collection.find_one(query)

    async def get_by_slug(self, slug: str, *, active_only: bool = True) -> Document | None:
        query: Document = {"slug": slug}
        if active_only:
            query["state"] = ACTIVE
        return await self.collection.find_one(query)

    async def update(self, organization_id: ObjectId, changes: Document,
                     *, expect: Document | None = None) -> Document | None:
        query: Document = {"_id": organization_id, **(expect or {})}
        return await self.collection.find_one_and_update(
            query, {"$set": {**changes, "updated_at": utcnow()}},
            return_document=ReturnDocument.AFTER,
        )

    async def delete(self, organization_id: ObjectId, *, state: str | None = None) -> None:
        query: Document = {"_id": organization_id}
        if state is not None:
            query["state"] = state
        await self.collection.delete_one(query)

    async def put_back(self, org: Document) -> None:
        """Insert a restored organization's document (idempotent on its `_id`)."""
        try:
            await self.collection.insert_one(org)
        except DuplicateKeyError:
            if await self.collection.find_one({"_id": org["_id"]}, {"_id": 1}) is None:
                raise

    async def count_active(self) -> int:
        return await self.collection.count_documents({"state": ACTIVE})

    async def all_names(self) -> list[Document]:
        return await self.collection.find({}, {"slug": 1, "collection_name": 1}).to_list(None)


class SlugClaims:
    """`slug_claims`: one document per slug in use or reserved (`_id` = slug).

    The single arbiter of names: a create claims its slug, a rename claims the new slug
    before it moves anything and keeps the old one until it has settled, a delete releases
    its slug last. Whoever inserts the claim first owns the name; everyone else gets 409."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db["slug_claims"]

    async def claim(self, slug: str, organization_id: ObjectId) -> bool:
        """True when the slug is (now, or already was) this organization's."""
        try:
            await self.collection.insert_one(
                {"_id": slug, "organization_id": organization_id, "claimed_at": utcnow()})
            return True
        except DuplicateKeyError:
            holder = await self.owner(slug)
            return holder is not None and holder["organization_id"] == organization_id

    async def adopt(self, slug: str, organization_id: ObjectId) -> bool:
        """Claim the slug of an organization created before claims existed (startup);
        True when this made the claim."""
        result = await self.collection.update_one(
            {"_id": slug},
            {"$setOnInsert": {"organization_id": organization_id, "claimed_at": utcnow()}},
            upsert=True)
        return result.upserted_id is not None

    async def owner(self, slug: str) -> Document | None:
        return await self.collection.find_one({"_id": slug})

    async def names(self) -> set[str]:
        return {doc["_id"] async for doc in self.collection.find({}, {"_id": 1})}

    async def release(self, slug: str, organization_id: ObjectId) -> None:
        await self.collection.delete_one({"_id": slug, "organization_id": organization_id})


class LifecycleJournal:
    """`lifecycle_ops`: the durable journal of in-flight lifecycle operations.

    One operation per organization at a time (unique index): a second concurrent rename,
    delete or index change of an organization fails to insert its entry and gets 409.
    Finished deletes stay (phase "done") until `expires_at`, so a repeated delete can be
    answered. Every write of an operation's holder is conditional on its `token`: whoever
    takes over an abandoned operation gets a new token, and the former holder's next step
    raises LeaseLost instead of acting."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db["lifecycle_ops"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index(
            "organization_id", unique=True, name="one_op_per_organization")
        await self.collection.create_index("lease_until", name="lease")
        await self.collection.create_index("expires_at", expireAfterSeconds=0, name="expiry")

    async def start(self, op: Document) -> None:
        """Raises DuplicateKeyError when the organization already has an operation."""
        await self.collection.insert_one(op)

    async def for_organization(self, organization_id: ObjectId) -> Document | None:
        return await self.collection.find_one({"organization_id": organization_id})

    async def advance(self, op: Document, **changes: Any) -> None:
        """Record progress, in the database and in `op`, if `op` is still held."""
        result = await self.collection.update_one({"_id": op["_id"], "token": op["token"]},
                                                  {"$set": changes})
        if result.matched_count != 1:
            raise LeaseLost(op["_id"])
        op.update(changes)

    async def acquire(self, op_id: ObjectId, *, owner: str, token: str, now: datetime,
                      lease_until: datetime) -> Document | None:
        """Take over an operation whose lease has run out; None if someone else holds it."""
        return await self.collection.find_one_and_update(
            {"_id": op_id, "phase": {"$ne": "done"}, "lease_until": {"$lt": now}},
            {"$set": {"owner": owner, "token": token, "lease_until": lease_until}},
            return_document=ReturnDocument.AFTER)

    async def stale(self, now: datetime) -> list[Document]:
        return await self.collection.find(
            {"phase": {"$ne": "done"}, "lease_until": {"$lt": now}}).to_list(None)

    async def forget_done(self, organization_id: ObjectId) -> None:
        """Drop a finished delete's record (kept to answer a repeated delete, which no token
        can make any more once a purge or restore of the organization starts, or a restore
        from a backup gives the id a new life)."""
        await self.collection.delete_one({"organization_id": organization_id, "phase": "done"})

    async def finish(self, op: Document) -> None:
        result = await self.collection.delete_one({"_id": op["_id"], "token": op["token"]})
        if result.deleted_count != 1:
            raise LeaseLost(op["_id"])


class CollectionOwners:
    """`tenant_collections`: which organization owns each tenant collection name (`_id`),
    and which of its lifecycle operations (`op_id`, None when idle) holds it right now.

    A collection is moved or dropped only by the operation holding it, checked here just
    before the act: a create takes the name of the collection it makes, a rename takes the
    new name and holds the old one until it has settled, a delete holds its collection
    until the stragglers are dropped. Index builds and drops hold it for their length."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db["tenant_collections"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index("organization_id", name="organization")

    async def take(self, name: str, organization_id: ObjectId, op_id: ObjectId) -> bool:
        """Own a new collection name for `op_id`; False when another owner has it."""
        try:
            await self.collection.insert_one({"_id": name, "organization_id": organization_id,
                                              "op_id": op_id, "since": utcnow()})
            return True
        except DuplicateKeyError:
            return await self.held(name, organization_id, op_id)

    async def hold(self, name: str, organization_id: ObjectId, op_id: ObjectId) -> bool:
        """Reserve the organization's idle collection for `op_id` (compare-and-set)."""
        held = await self.collection.find_one_and_update(
            {"_id": name, "organization_id": organization_id, "op_id": {"$in": [None, op_id]}},
            {"$set": {"op_id": op_id}})
        return held is not None

    async def held(self, name: str, organization_id: ObjectId, op_id: ObjectId) -> bool:
        found = await self.collection.find_one(
            {"_id": name, "organization_id": organization_id, "op_id": op_id}, {"_id": 1})
        return found is not None

    async def let_go(self, name: str, organization_id: ObjectId, op_id: ObjectId) -> None:
        """The operation is done with the collection; the organization keeps it."""
        await self.collection.update_one(
            {"_id": name, "organization_id": organization_id, "op_id": op_id},
            {"$set": {"op_id": None}})

    async def give_up(self, name: str, organization_id: ObjectId, op_id: ObjectId) -> None:
        """The organization no longer owns the name: anyone may take it."""
        await self.collection.delete_one(
            {"_id": name, "organization_id": organization_id, "op_id": {"$in": [None, op_id]}})

    async def names(self) -> set[str]:
        return {doc["_id"] async for doc in self.collection.find({}, {"_id": 1})}

    async def adopt(self, name: str, organization_id: ObjectId) -> bool:
        """Own the collection of an organization from before ownership existed (startup);
        True when this made it the owner."""
        result = await self.collection.update_one(
            {"_id": name},
            {"$setOnInsert": {"organization_id": organization_id, "op_id": None,
                              "since": utcnow()}},
            upsert=True)
        return result.upserted_id is not None


class IdempotencyKeys:
    """`idempotency_keys`: what a create sent with an Idempotency-Key answered (TTL)."""

    def __init__(self, db: AsyncDatabase[Document], ttl_seconds: int) -> None:
        self.collection = db["idempotency_keys"]
        self.ttl_seconds = ttl_seconds

    async def ensure_indexes(self) -> None:
        await self.collection.create_index(
            "created_at", expireAfterSeconds=self.ttl_seconds, name="ttl")

    async def begin(self, key: str, *, fingerprint: str, organization_id: ObjectId,
                    lease_until: datetime) -> Document | None:
        """Reserve the key for this request; the existing record if the key is known."""
        try:
            await self.collection.insert_one({
                "_id": key, "fingerprint": fingerprint, "state": "pending",
                "organization_id": organization_id, "lease_until": lease_until,
                "created_at": utcnow()})
            return None
        except DuplicateKeyError:
            # None only if it vanished in between (its request failed): "still running".
            return await self.collection.find_one({"_id": key}) or {"state": "pending"}

    async def take_over(self, key: str, *, now: datetime, lease_until: datetime
                        ) -> Document | None:
        """Adopt a pending key whose request died (its lease ran out)."""
        return await self.collection.find_one_and_update(
            {"_id": key, "state": "pending", "lease_until": {"$lt": now}},
            {"$set": {"lease_until": lease_until}}, return_document=ReturnDocument.AFTER)

    async def complete(self, key: str, *, status: int, body: Document) -> None:
        await self.collection.update_one(
            {"_id": key}, {"$set": {"state": "done", "status": status, "body": body}})

    async def abandon(self, key: str) -> None:
        await self.collection.delete_one({"_id": key, "state": "pending"})


class TenantCollections:
    """Create, move and drop the per-organization collections."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db

    async def exists(self, name: str) -> bool:
        return bool(await self.db.list_collection_names(filter={"name": name}))

    async def create(self, name: str) -> bool:
        """Create the collection with its default indexes; False if it already existed."""
        try:
            await self.db.create_collection(name)
        except CollectionInvalid:
            return False
        except OperationFailure as exc:
            if exc.code != NAMESPACE_EXISTS:
                raise
            return False
        await self.ensure_indexes(name)
        return True

    async def ensure_indexes(self, name: str) -> None:
        collection = self.db[name]
        for keys, options in TENANT_INDEXES:
            await collection.create_index(keys, **options)

    async def rename(self, source: str, target: str) -> None:
        """MongoDB's renameCollection: the data moves as a whole, never document by document.

        Raises OperationFailure 48 when the target exists, 26 when the source is missing."""
        await self.db.client.admin.command(
            "renameCollection", f"{self.db.name}.{source}", to=f"{self.db.name}.{target}",
            dropTarget=False,
        )

    async def move(self, source: str, target: str) -> bool:
        """Idempotent move: afterwards `source` is gone and `target` holds what either held;
        False when there was no `source` (already moved).

        Normally one renameCollection. When both exist (a late write re-created `source`
        after the move: MongoDB creates collections on insert) the stragglers are folded
        into `target`, the later write winning, and `source` is dropped."""
        try:
            await self.rename(source, target)
            return True
        except OperationFailure as exc:
            if exc.code == NAMESPACE_NOT_FOUND:
                return False
            if exc.code != NAMESPACE_EXISTS:
                raise
        batch: list[ReplaceOne[Document]] = []
        async for doc in self.db[source].find({}):
            batch.append(ReplaceOne({"_id": doc["_id"]}, doc, upsert=True))
            if len(batch) >= FOLD_BATCH:
                await self.db[target].bulk_write(batch, ordered=False)
                batch = []
        if batch:
            await self.db[target].bulk_write(batch, ordered=False)
        await self.drop(source)
        return True

    async def drop(self, name: str) -> None:
        await self.db.drop_collection(name)

    async def count(self, name: str) -> int:
        return await self.db[name].count_documents({})


PARKED_PREFIX = "parked_"
PARKED, PURGING, RESTORING = "parked", "purging", "restoring"


def parked_collection(organization_id: ObjectId) -> str:
    """Where a deleted organization's collection waits out its restore window: named by
    its id, so a new organization of the same name never meets it."""
    return f"{PARKED_PREFIX}{organization_id}"


class DeletedOrganizations:
    """`deleted_organizations` and `deleted_members`: organizations deleted within their
    restore window (DELETION_GRACE_DAYS), set aside with their people so that the name and
    every email are free at once, and nothing of them resolves a token.

    A parked organization is the document it had (same `_id`, its record policies, its
    original `organization_name`, `slug` and `collection_name`) plus `state` (parked, or
    purging / restoring while the one operation of its journal slot acts on it, `op_id`),
    `parked_collection`, `deleted_at`, `purge_after` and `deleted_by`. Its members are
    their documents as they were."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.organizations = db["deleted_organizations"]
        self.members = db["deleted_members"]

    async def ensure_indexes(self) -> None:
        await self.organizations.create_index([("state", 1), ("purge_after", 1)],
                                              name="due")
        await self.members.create_index([("organization_id", 1), ("_id", 1)],
                                         name="organization")

    async def park(self, org: Document, *, deleted_by: ObjectId | None,
                   deleted_at: datetime, purge_after: datetime) -> None:
        """Set the organization's document aside (idempotent: a repeated step keeps the
        first one)."""
        doc = {**org, "state": PARKED, "op_id": None,
               "parked_collection": parked_collection(org["_id"]),
               "deleted_at": deleted_at, "purge_after": purge_after, "deleted_by": deleted_by}
        with contextlib.suppress(DuplicateKeyError):
            await self.organizations.insert_one(doc)

    async def keep_members(self, members: list[Document]) -> None:
        if members:
            await self.members.bulk_write(
                [ReplaceOne({"_id": m["_id"]}, m, upsert=True) for m in members],
                ordered=False)

    async def get(self, organization_id: ObjectId) -> Document | None:
        return await self.organizations.find_one({"_id": organization_id})

    async def listing(self) -> list[Document]:
        """Every organization in its window, the first to be purged first."""
        return await self.organizations.find({}, sort=[("purge_after", 1)]).to_list(None)

    async def due(self, now: datetime) -> list[Document]:
        return await self.organizations.find(
            {"state": PARKED, "purge_after": {"$lte": now}},
            {"_id": 1}, sort=[("purge_after", 1)]).to_list(None)

    async def mark(self, organization_id: ObjectId, *, expect: Document, state: str,
                   op_id: ObjectId | None) -> Document | None:
        """Compare-and-set the parked organization's state: the one place purge and restore
        decide which of them gets it."""
        return await self.organizations.find_one_and_update(
            {"_id": organization_id, **expect}, {"$set": {"state": state, "op_id": op_id}},
            return_document=ReturnDocument.AFTER)

    async def members_of(self, organization_id: ObjectId) -> list[Document]:
        return await self.members.find({"organization_id": organization_id},
                                       sort=[("_id", 1)]).to_list(None)

    async def count_members(self, organization_id: ObjectId) -> int:
        return await self.members.count_documents({"organization_id": organization_id})

    async def forget_members(self, organization_id: ObjectId) -> int:
        result = await self.members.delete_many({"organization_id": organization_id})
        return result.deleted_count

    async def forget(self, organization_id: ObjectId, op_id: ObjectId) -> None:
        """Drop the parked document the operation `op_id` holds (its members first)."""
        await self.forget_members(organization_id)
        await self.organizations.delete_one({"_id": organization_id, "op_id": op_id})
