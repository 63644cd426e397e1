"""All MongoDB access for the audit trail (the `audit_log` collection of the master db)."""

from __future__ import annotations

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

    async def find(self, query: Document, *, sort: list[tuple[str, int]], limit: int
                   ) -> list[Document]:
        return await self.collection.find(query).sort(sort).limit(limit).to_list(None)
