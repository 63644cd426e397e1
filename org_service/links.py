"""The single-use tokens of emailed links (invitations, password resets, email
verification): 256 bits from `secrets`, of which only the SHA-256 is stored; and the
store of the links a member asks for by mail (one live link per member and kind)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Annotated

from bson import ObjectId
from pydantic import StringConstraints
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from org_service.db import Document
from org_service.segments import segment

TOKEN_BYTES = 32  # 256 bits
# secrets.token_urlsafe(32): 43 characters of the URL-safe base64 alphabet.
# Routed by this pattern too: `/invitations/accept` is never a token "accept".
LINK_TOKEN_PATTERN = segment("linktoken", r"^[A-Za-z0-9_-]{43}$")
LinkToken = Annotated[str, StringConstraints(pattern=LINK_TOKEN_PATTERN)]


def token_hash(token: str) -> str:
    """What is stored of a token: its SHA-256. A 256-bit random token needs no salt or
    slow hash: nobody can guess one to check against a leaked digest."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh token and its hash."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, token_hash(token)


# Expired links are kept this long past their expiry, so that following one answers 410
# ("ask for a new one") rather than 404; then the TTL monitor removes them.
KEPT_EXPIRED_SECONDS = 7 * 24 * 3600


class MemberLinks:
    """One link document per member in `collection` (`_id` is the member's id): a new
    request replaces the token, so the previous link dies at once. `serial` counts the
    requests, for the outbox guard: the mail of request n waits until the document has
    reached serial n, and is dropped once a later request has replaced its token."""

    def __init__(self, db: AsyncDatabase[Document], collection: str) -> None:
        self.collection = db[collection]

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

    async def mark_used(self, link: Document, now: datetime) -> None:
        """Record that the link was used (the member write it made already made it dead)."""
        await self.collection.update_one(
            {"_id": link["_id"], "token_hash": link["token_hash"], "used_at": None},
            {"$set": {"used_at": now}})
