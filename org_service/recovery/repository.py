"""All MongoDB access for password resets (`password_resets` in the master database).

One document per member (`_id` is the member's id): a new request replaces the token, so
the previous link dies at once. `serial` counts the requests, for the outbox guard: the
mail of request n waits until the document has reached serial n, and is dropped once
a later request has replaced its token. `member_version` is the member's token version
when the link was asked for: the password write is a compare-and-set on it, which is
what makes a link single-use (see org_service/recovery/service.py)."""

from __future__ import annotations

from datetime import datetime

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from org_service.db import Document

COLLECTION = "password_resets"
# Expired links are kept this long past their expiry, so that following one answers 410
# ("ask for a new one") rather than 404; then the TTL monitor removes them.
KEPT_EXPIRED_SECONDS = 7 * 24 * 3600


class PasswordResetRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db[COLLECTION]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index("token_hash", unique=True, name="token_hash")
        await self.collection.create_index(
            "expires_at", expireAfterSeconds=KEPT_EXPIRED_SECONDS, name="expiry")

    async def get(self, member_id: ObjectId) -> Document | None:
        return await self.collection.find_one({"_id": member_id})

    async def by_token_hash(self, digest: str) -> Document | None:
        return await self.collection.find_one({"token_hash": digest})

    async def replace(self, previous: Document | None, doc: Document) -> bool:
        """Write `doc` (the member's new link) if the member's document is still
        `previous` (None: there was none); False when a concurrent request won."""
        if previous is None:
            try:
                await self.collection.insert_one(doc)
            except DuplicateKeyError:
                return False
            return True
        changed = await self.collection.find_one_and_replace(
            {"_id": previous["_id"], "serial": previous["serial"]}, doc,
            return_document=ReturnDocument.AFTER)
        return changed is not None

    async def mark_used(self, reset: Document, now: datetime) -> None:
        """Record that the link was used (its password write already made it dead)."""
        await self.collection.update_one(
            {"_id": reset["_id"], "token_hash": reset["token_hash"], "used_at": None},
            {"$set": {"used_at": now}})
