"""All MongoDB access for invitations (`invitations` in the master database).

At most one pending invitation per email and organization (a unique partial index), so
two admins inviting the same person at once make one invitation. Every state change is a
compare-and-set on what the invitation says now: a pending invitation past `expires_at`
takes no change but being marked expired, which also frees its email's slot."""

from __future__ import annotations

from datetime import datetime

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from org_service.db import Document

PENDING, ACCEPTED, EXPIRED, REVOKED = "pending", "accepted", "expired", "revoked"
COLLECTION = "invitations"


class InvitationRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db[COLLECTION]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index(
            [("organization_id", 1), ("email_key", 1)], unique=True, name="pending_email",
            partialFilterExpression={"state": PENDING})
        await self.collection.create_index("token_hash", unique=True, name="token_hash")
        await self.collection.create_index([("organization_id", 1), ("_id", 1)],
                                           name="organization")
        await self.collection.create_index(
            [("organization_id", 1), ("invited_by", 1), ("_id", 1)], name="inviter")

    async def insert(self, doc: Document) -> None:
        await self.collection.insert_one(doc)

    async def get_in(self, organization_id: ObjectId, invitation_id: ObjectId
                     ) -> Document | None:
        return await self.collection.find_one(
            {"_id": invitation_id, "organization_id": organization_id})

    async def get(self, invitation_id: ObjectId) -> Document | None:
        return await self.collection.find_one({"_id": invitation_id})

    async def by_token_hash(self, token_hash: str) -> Document | None:
        return await self.collection.find_one({"token_hash": token_hash})

    async def pending_for(self, organization_id: ObjectId, email_key: str) -> Document | None:
        return await self.collection.find_one(
            {"organization_id": organization_id, "email_key": email_key, "state": PENDING})

    async def find(self, query: Document, *, sort: list[tuple[str, int]], limit: int
                   ) -> list[Document]:
        return await self.collection.find(query, sort=sort, limit=limit).to_list(None)

    async def _change(self, expect: Document, changes: Document, *,
                      inc: Document | None = None) -> Document | None:
        update: Document = {"$set": changes}
        if inc:
            update["$inc"] = inc
        return await self.collection.find_one_and_update(
            expect, update, return_document=ReturnDocument.AFTER)

    async def mark_expired(self, invitation: Document, now: datetime) -> Document | None:
        return await self._change(
            {"_id": invitation["_id"], "state": PENDING, "expires_at": {"$lte": now}},
            {"state": EXPIRED})

    async def rotate(self, invitation: Document, *, token_hash: str, expires_at: datetime,
                     now: datetime) -> Document | None:
        """A new token (the old one dies at once) and a new expiry, if the invitation is
        still pending with the token `invitation` holds."""
        return await self._change(
            {"_id": invitation["_id"], "state": PENDING, "expires_at": {"$gt": now},
             "token_hash": invitation["token_hash"],
             "token_serial": invitation["token_serial"]},
            {"token_hash": token_hash, "expires_at": expires_at, "resent_at": now},
            inc={"token_serial": 1})

    async def revoke(self, invitation: Document, *, by: ObjectId, now: datetime
                     ) -> Document | None:
        return await self._change(
            {"_id": invitation["_id"], "state": PENDING, "expires_at": {"$gt": now}},
            {"state": REVOKED, "revoked_at": now, "revoked_by": by})

    async def accept(self, invitation: Document, *, member_id: ObjectId, now: datetime
                     ) -> Document | None:
        return await self._change(
            {"_id": invitation["_id"], "state": PENDING, "expires_at": {"$gt": now},
             "token_hash": invitation["token_hash"]},
            {"state": ACCEPTED, "accepted_at": now, "member_id": member_id})

    async def finish_accept(self, invitation: Document, *, member_id: ObjectId,
                            now: datetime) -> Document | None:
        """An accept whose member exists (an earlier attempt stopped after inserting it):
        the invitation becomes accepted by that member, if it is still pending."""
        return await self._change(
            {"_id": invitation["_id"], "state": PENDING},
            {"state": ACCEPTED, "accepted_at": now, "member_id": member_id})

    async def revoke_all_of(self, organization_id: ObjectId, *, by: ObjectId | None,
                            now: datetime) -> None:
        """The organization was deleted: no pending link of it may make a member any more
        (an accept racing the delete then takes its member back, see accept)."""
        await self.collection.update_many(
            {"organization_id": organization_id, "state": PENDING},
            {"$set": {"state": REVOKED, "revoked_at": now, "revoked_by": by}})

    async def delete_of(self, organization_id: ObjectId) -> None:
        await self.collection.delete_many({"organization_id": organization_id})
