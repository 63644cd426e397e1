"""All MongoDB access for organizations: the `organizations` collection in the master
database and the tenant collections it points to."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid, OperationFailure

from org_service.db import Document, utcnow

ACTIVE = "active"
# Default indexes of every tenant collection, created with it (records are addressed by
# kind + id and listed by kind + creation time).
TENANT_INDEXES: list[tuple[list[tuple[str, int]], dict[str, Any]]] = [
    ([("kind", ASCENDING), ("_id", ASCENDING)], {"name": "kind_id"}),
    ([("kind", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)],
     {"name": "kind_created"}),
]

NAMESPACE_EXISTS = 48
NAMESPACE_NOT_FOUND = 26


def object_id(value: str) -> ObjectId | None:
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        return None


class OrganizationRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.collection = db["organizations"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index("slug", unique=True, name="slug_unique")
        await self.collection.create_index(
            "collection_name", unique=True, name="collection_name_unique"
        )

    async def insert(self, *, name: str, slug: str, collection_name: str, state: str) -> Document:
        now = utcnow()
        doc: Document = {
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

    async def delete(self, organization_id: ObjectId) -> None:
        await self.collection.delete_one({"_id": organization_id})

    async def count_active(self) -> int:
        return await self.collection.count_documents({"state": ACTIVE})


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

    async def drop(self, name: str) -> None:
        await self.db.drop_collection(name)

    async def count(self, name: str) -> int:
        return await self.db[name].count_documents({})
