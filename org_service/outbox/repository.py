"""All MongoDB access for the outbox (`outbox` in the master database).

A message is `pending` (due at `next_attempt_at`), `sending` (claimed by one sender until
`lease_until`), then `sent`, `failed` (out of attempts) or `dropped` (its guard no longer
holds). Every change after the claim is a compare-and-set on the claim, so a sender whose
lease ran out and was taken over changes nothing. Sent and dropped messages keep their
metadata; their bodies (which hold links) are removed."""

from __future__ import annotations

from datetime import datetime, timedelta

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from org_service.db import Document, utcnow

PENDING, SENDING, SENT, FAILED, DROPPED = "pending", "sending", "sent", "failed", "dropped"
BODY = {"text": "", "html": ""}


class OutboxRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.collection = db["outbox"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("state", 1), ("next_attempt_at", 1)], name="due")
        await self.collection.create_index([("state", 1), ("lease_until", 1)], name="leases")

    async def insert(self, message: Document) -> None:
        now = utcnow()
        await self.collection.insert_one({
            **message, "created_at": now, "state": PENDING, "attempts": 0,
            "next_attempt_at": now, "lease_until": None, "claim": None, "last_error": None,
            "sent_at": None})

    async def drop_queued(self, message_id: ObjectId, reason: str) -> None:
        """Drop a message nobody is sending yet."""
        await self.collection.update_one(
            {"_id": message_id, "state": PENDING},
            {"$set": {"state": DROPPED, "last_error": reason, "next_attempt_at": None},
             "$unset": BODY})

    async def drop_of(self, organization_id: ObjectId, reason: str) -> None:
        """Drop every message of the organization nobody is sending yet."""
        await self.collection.update_many(
            {"organization_id": organization_id, "state": PENDING},
            {"$set": {"state": DROPPED, "last_error": reason, "next_attempt_at": None},
             "$unset": BODY})

    async def delete_of(self, organization_id: ObjectId) -> None:
        await self.collection.delete_many({"organization_id": organization_id})

    async def claim(self, now: datetime, lease: timedelta, claim: str) -> Document | None:
        """Take the most overdue message that is due, or whose sender's lease ran out (it
        crashed or hung), for `lease`; counts the attempt."""
        return await self.collection.find_one_and_update(
            {"$or": [{"state": PENDING, "next_attempt_at": {"$lte": now}},
                     {"state": SENDING, "lease_until": {"$lte": now}}]},
            {"$set": {"state": SENDING, "lease_until": now + lease, "claim": claim},
             "$inc": {"attempts": 1}},
            sort=[("next_attempt_at", 1)], return_document=ReturnDocument.AFTER)

    async def _settle(self, message: Document, update: Document) -> bool:
        result = await self.collection.update_one(
            {"_id": message["_id"], "state": SENDING, "claim": message["claim"]}, update)
        return result.modified_count == 1

    async def sent(self, message: Document) -> bool:
        return await self._settle(message, {
            "$set": {"state": SENT, "sent_at": utcnow(), "lease_until": None,
                     "next_attempt_at": None, "last_error": None},
            "$unset": BODY})

    async def retry_at(self, message: Document, when: datetime, error: str) -> bool:
        return await self._settle(message, {"$set": {
            "state": PENDING, "next_attempt_at": when, "lease_until": None,
            "last_error": error}})

    async def postpone(self, message: Document, when: datetime, why: str) -> bool:
        """Back to pending without spending an attempt (its guard is not there yet)."""
        return await self._settle(message, {
            "$set": {"state": PENDING, "next_attempt_at": when, "lease_until": None,
                     "last_error": why},
            "$inc": {"attempts": -1}})

    async def failed(self, message: Document, error: str) -> bool:
        # The body stays: an operator may set it back to pending once the cause is fixed.
        return await self._settle(message, {"$set": {
            "state": FAILED, "lease_until": None, "next_attempt_at": None,
            "last_error": error}})

    async def dropped(self, message: Document, reason: str) -> bool:
        return await self._settle(message, {
            "$set": {"state": DROPPED, "lease_until": None, "next_attempt_at": None,
                     "last_error": reason},
            "$unset": BODY})

    async def next_due(self) -> datetime | None:
        """When the next message falls due (or its lease runs out)."""
        due = await self.collection.find_one(
            {"state": PENDING}, {"next_attempt_at": 1}, sort=[("next_attempt_at", 1)])
        lease = await self.collection.find_one(
            {"state": SENDING}, {"lease_until": 1}, sort=[("lease_until", 1)])
        times: list[datetime] = [doc[key] for doc, key in ((due, "next_attempt_at"),
                                                           (lease, "lease_until"))
                                 if doc is not None and doc.get(key) is not None]
        return min(times, default=None)

    async def guarded(self, collection: str, document_id: ObjectId) -> Document | None:
        """The document a message's guard names (one of this database's collections)."""
        return await self.db[collection].find_one({"_id": document_id})
