"""All MongoDB access for failed logins and other throttled attempts."""

from __future__ import annotations

from datetime import datetime, timedelta

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from org_service.db import Document
from org_service.errors import ServiceUnavailable


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
