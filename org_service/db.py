"""The MongoDB client: one AsyncMongoClient per process, with bounded timeouts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.monitoring import CommandListener

from org_service.config import OperatorSettings

Document = dict[str, Any]


def utcnow() -> datetime:
    # MongoDB keeps milliseconds; truncating here keeps what we return equal to what we store.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def object_id(value: object) -> ObjectId | None:
    """The ObjectId a string (or an ObjectId) stands for; None for anything else."""
    if isinstance(value, ObjectId):
        return value
    try:
        return ObjectId(value) if isinstance(value, str) else None
    except InvalidId:
        return None


def create_client(url: str, settings: OperatorSettings,
                  listeners: list[CommandListener] | None = None, *,
                  appname: str = "org_service") -> AsyncMongoClient[Document]:
    timeout = settings.MONGODB_TIMEOUT_MS
    return AsyncMongoClient(
        url,
        tz_aware=True,
        retryWrites=True,
        retryReads=True,
        w="majority",
        serverSelectionTimeoutMS=timeout,
        connectTimeoutMS=timeout,
        socketTimeoutMS=timeout * 2,
        appname=appname,
        event_listeners=listeners or [],
    )


class Mongo:
    """The client and the master database; tenant collections live in the same database."""

    def __init__(self, client: AsyncMongoClient[Document], master_db_name: str) -> None:
        self.client = client
        self.master: AsyncDatabase[Document] = client[master_db_name]

    async def ping(self) -> None:
        await self.client.admin.command("ping")

    async def close(self) -> None:
        await self.client.close()
