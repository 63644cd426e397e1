"""All MongoDB access for the audit trail (the `audit_log` collection of the master db)."""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure

from org_service.db import Document

log = logging.getLogger(__name__)

RETENTION_INDEX = "retention"
COLLAPSE_INDEX = "collapse_key"
_TTL_KEY = [("at", ASCENDING)]
# What an index on `at` may carry and still be turned into ours by collMod.
_PLAIN_OPTIONS = {"v", "key", "name", "ns", "expireAfterSeconds"}
# Two processes starting at once with different settings: the loser re-reads and retries.
_INDEX_CONFLICTS = {85, 86}  # IndexOptionsConflict, IndexKeySpecsConflict


class AuditRepository:
    def __init__(self, db: AsyncDatabase[Document], *, retention_seconds: int = 365 * 86400
                 ) -> None:
        self.db = db
        self.collection = db["audit_log"]
        self.retention_seconds = retention_seconds

    async def ensure_indexes(self) -> None:
        await self.collection.create_index(
            [("organization_id", 1), ("_id", DESCENDING)], name="organization_newest")
        # One entry per collapse key (identity + window): concurrent upserts of several
        # processes meet here. Plain entries carry no key, hence partial.
        await self.collection.create_index(
            COLLAPSE_INDEX, name=COLLAPSE_INDEX, unique=True,
            partialFilterExpression={COLLAPSE_INDEX: {"$exists": True}})
        for attempt in range(3):
            try:
                await self._ensure_retention()
                return
            except OperationFailure as exc:
                if exc.code not in _INDEX_CONFLICTS or attempt == 2:
                    raise

    async def _ensure_retention(self) -> None:
        """A TTL index on `at` expiring entries `retention_seconds` after they were written.

        An index on `at` from an earlier deployment (plain, another retention, or other
        options) is brought to this one: collMod when only the TTL differs (MongoDB changes
        it in place, and turns a plain single-field index into a TTL one since 5.1), else
        drop and create. Idempotent, so every process runs it at startup."""
        existing = [spec for spec in await (await self.collection.list_indexes()).to_list(None)
                    if list(spec["key"].items()) == [("at", 1)]]
        wanted = self.retention_seconds
        if len(existing) == 1 and set(existing[0]) <= _PLAIN_OPTIONS:
            spec = existing[0]
            if spec.get("expireAfterSeconds") == wanted:
                return
            try:
                await self.db.command("collMod", self.collection.name, index={
                    "name": spec["name"], "expireAfterSeconds": wanted})
                log.warning("audit_log: index %s now expires entries after %s s (was %s)",
                            spec["name"], wanted, spec.get("expireAfterSeconds"))
                return
            except OperationFailure as exc:
                log.warning("audit_log: collMod of index %s refused (%s); recreating it",
                            spec["name"], exc)
        for spec in existing:
            log.warning("audit_log: replacing index %s on `at` by the retention index",
                        spec["name"])
            try:
                await self.collection.drop_index(spec["name"])
            except OperationFailure as exc:
                if exc.code != 27:  # IndexNotFound: another process dropped it first
                    raise
        await self.collection.create_index(_TTL_KEY, name=RETENTION_INDEX,
                                           expireAfterSeconds=wanted)

    async def insert(self, entry: Document) -> None:
        await self.collection.insert_one(entry)

    async def collapse(self, key: str, entry: Document, *, last_at: datetime,
                       last_request_id: str) -> None:
        """Count one more occurrence of the entry with this collapse key, creating it (with
        `entry`'s fields) if it is the first. Atomic, so concurrent processes share it."""
        update = {
            "$setOnInsert": entry,
            "$inc": {"count": 1},
            "$max": {"last_at": last_at},
            "$set": {"last_request_id": last_request_id},
        }
        try:
            await self.collection.update_one({COLLAPSE_INDEX: key}, update, upsert=True)
        except DuplicateKeyError:
            # Two upserts raced to insert the same key; the loser's retry finds the
            # winner's document and updates it.
            await self.collection.update_one({COLLAPSE_INDEX: key}, update, upsert=True)

    async def find(self, query: Document, *, sort: list[tuple[str, int]], limit: int
                   ) -> list[Document]:
        return await self.collection.find(query).sort(sort).limit(limit).to_list(None)

    async def delete_of(self, organization_id: ObjectId, *, keep_action: str) -> int:
        """Purge an organization's trail but for its entries of `keep_action`."""
        result = await self.collection.delete_many(
            {"organization_id": organization_id, "action": {"$ne": keep_action}})
        return result.deleted_count

    async def put(self, entry: Document) -> None:
        """Insert an entry with a chosen `_id` once (a repeated step keeps the first)."""
        with contextlib.suppress(DuplicateKeyError):
            await self.collection.insert_one(entry)
