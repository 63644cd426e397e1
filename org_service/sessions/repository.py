"""All MongoDB access for sessions: `sessions` (one document per login, the refresh-token
family of RFC 9700) and `refresh_tokens` (the SHA-256 of every refresh token a session was
given, so a spent one is recognised as such when it comes back).

Both expire with their session through TTL indexes on `expires_at`."""

from __future__ import annotations

from datetime import datetime

from bson import ObjectId
from pymongo import DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from org_service.db import Document

# A session is live while `ended_at` is None and `expires_at` is ahead; `end_reason` says
# why one ended (logout, revoked, refresh_token_reuse, suspended, removed, ...).
LIVE: Document = {"ended_at": None}


class SessionRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.sessions = db["sessions"]
        self.tokens = db["refresh_tokens"]

    async def ensure_indexes(self) -> None:
        await self.sessions.create_index([("member_id", 1), ("last_used_at", DESCENDING)],
                                         name="member")
        await self.sessions.create_index([("organization_id", 1)], name="organization")
        await self.sessions.create_index("expires_at", expireAfterSeconds=0, name="expiry")
        await self.tokens.create_index("expires_at", expireAfterSeconds=0, name="expiry")

    async def insert(self, session: Document) -> None:
        await self.sessions.insert_one(session)

    async def get(self, session_id: ObjectId) -> Document | None:
        return await self.sessions.find_one({"_id": session_id})

    async def add_token(self, token_hash: str, *, session_id: ObjectId, generation: int,
                        expires_at: datetime) -> None:
        """Remember a refresh token of the session. Idempotent: a token is derived from the
        one before it, so a retried rotation writes the same document again."""
        await self.tokens.update_one(
            {"_id": token_hash},
            {"$setOnInsert": {"session_id": session_id, "generation": generation,
                              "expires_at": expires_at}},
            upsert=True)

    async def token(self, token_hash: str) -> Document | None:
        return await self.tokens.find_one({"_id": token_hash})

    async def rotate(self, session: Document, changes: Document) -> Document | None:
        """Move the live session one generation on if it is still at the generation read
        (compare-and-set: of two refreshes with one token, one wins)."""
        return await self.sessions.find_one_and_update(
            {"_id": session["_id"], "generation": session["generation"], **LIVE},
            {"$set": changes, "$inc": {"generation": 1}},
            return_document=ReturnDocument.AFTER)

    async def end(self, query: Document, *, reason: str, at: datetime) -> int:
        """End the live sessions matching `query`; how many were."""
        result = await self.sessions.update_many(
            {**query, **LIVE}, {"$set": {"ended_at": at, "end_reason": reason}})
        return result.modified_count

    async def live_of(self, member_id: ObjectId, *, member_version: int, now: datetime,
                      limit: int) -> list[Document]:
        """A member's live sessions, most recently used first. Sessions from before the
        member's last credential change (another `member_version`) are dead already."""
        cursor = self.sessions.find(
            {"member_id": member_id, "member_version": member_version,
             "expires_at": {"$gt": now}, **LIVE},
            sort=[("last_used_at", DESCENDING)], limit=limit)
        return await cursor.to_list(None)

    async def oldest_beyond(self, member_id: ObjectId, keep: int) -> list[ObjectId]:
        """The ids of a member's live sessions past the `keep` most recently used."""
        cursor = self.sessions.find({"member_id": member_id, **LIVE}, {"_id": 1},
                                    sort=[("last_used_at", DESCENDING)], skip=keep)
        return [doc["_id"] for doc in await cursor.to_list(None)]
