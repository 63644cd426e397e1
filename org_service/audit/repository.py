"""All MongoDB access for the audit trail (the `audit_log` collection of the master db)."""

from __future__ import annotations

from bson import ObjectId
from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from org_service.db import Document


class AuditRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db["audit_log"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index(
            [("organization_id", 1), ("_id", DESCENDING)], name="organization_newest")

    async def insert(self, entry: Document) -> None:
        await self.collection.insert_one(entry)

    async def newest_first(self, organization_id: ObjectId, *, limit: int,
                           before: ObjectId | None) -> list[Document]:
        query: Document = {"organization_id": organization_id}
        if before is not None:
            query["_id"] = {"$lt": before}
        cursor = self.collection.find(query).sort("_id", DESCENDING).limit(limit)
        return await cursor.to_list(None)
