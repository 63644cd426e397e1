"""All MongoDB access for tenant records.

`RecordRepository.for_tenant` is the single way to a tenant's collection: it takes the
collection name from the verified tenant context only, so no request can name another
organization's data (and lifecycle checks, e.g. "collection being moved", hook in there).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Sequence
from datetime import datetime
from functools import cached_property
from typing import Any

import bson
import pymongo
from bson import ObjectId
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from org_service.db import Document
from org_service.tenancy import TenantContext

log = logging.getLogger(__name__)

NAMESPACE_NOT_FOUND = 26
USER_INDEX_PREFIX = "rx_"  # admin-declared indexes; never clashes with the defaults
# Exports read in the order of the default kind + created_at index.
EXPORT_SORT = [("kind", 1), ("created_at", 1), ("_id", 1)]
# What the records API wrote; anything else in the collection (say, written there by hand)
# is not a record and is never served as one.
IS_RECORD: Document = {"kind": {"$type": "string"}, "data": {"$type": "object"},
                       "version": {"$type": ["int", "long"]}}


RAW: CodecOptions[RawBSONDocument] = CodecOptions(document_class=RawBSONDocument,
                                                  tz_aware=True)
DECODED: CodecOptions[Document] = CodecOptions(tz_aware=True)


def decode(raw: RawBSONDocument) -> Document:
    return bson.decode(raw.raw, codec_options=DECODED)


def by_id(kind: str, record_id: ObjectId) -> Document:
    return {"_id": record_id, "kind": kind}


def is_record(document: Document) -> bool:
    """IS_RECORD, checked here: for one document found by id this costs the server nothing
    (SecantusDB takes some 0.3 ms longer over the $type tests, in the tenant lookup too)."""
    version = document.get("version")
    return (isinstance(document.get("data"), dict) and isinstance(version, int)
            and not isinstance(version, bool) and isinstance(document.get("kind"), str))


class RecordRepository:
    def __init__(self, db: AsyncDatabase[Document], *, max_time_ms: int,
                 export_batch_size: int, index_build_timeout: int,
                 response_bytes: int = 8 * 1024 * 1024,
                 max_record_bytes: int = 256 * 1024) -> None:
        self.db = db
        self.max_time_ms = max_time_ms
        self.export_batch_size = export_batch_size
        self.index_build_timeout = index_build_timeout
        self.response_bytes = response_bytes
        self.batch_size = max(1, response_bytes // max_record_bytes)

    def for_tenant(self, tenant: TenantContext) -> TenantRecords:
        return TenantRecords(self.db, self, tenant)


class TenantRecords:
    """One tenant's records: every query filters on kind, every read has maxTimeMS, every
    write runs in the tenant's write window (see TenantContext.write_window)."""

    def __init__(self, db: AsyncDatabase[Document], repo: RecordRepository,
                 tenant: TenantContext) -> None:
        self.db = db
        self.name = tenant.collection_name
        self.write_window = tenant.write_window
        self.prefetched = tenant.prefetched
        self.max_time_ms = repo.max_time_ms
        self.export_batch_size = repo.export_batch_size
        self.index_build_timeout = repo.index_build_timeout
        self.response_bytes = repo.response_bytes
        # A batch of records of the largest size still fits the budget.
        self.batch_size = repo.batch_size

    async def insert(self, document: Document) -> None:
        with self.write_window():
            await self.collection.insert_one(document)

    async def insert_all(self, documents: list[Document]) -> None:
        """All or nothing: if the insert fails part-way, the ones written are removed."""
        try:
            with self.write_window():
                await self.collection.insert_many(documents, ordered=True)
        except BaseException:
            ids = [doc["_id"] for doc in documents]
            await asyncio.shield(self._remove(ids))
            raise

    async def _remove(self, ids: list[ObjectId]) -> None:
        try:
            await self.collection.delete_many({"_id": {"$in": ids}})
        except Exception:
            log.exception("could not undo a failed bulk insert of %d records into %s",
                          len(ids), self.name)

    @cached_property
    def collection(self) -> AsyncCollection[Document]:
        # Built when first used: a read served by the tenant lookup never needs it.
        return self.db[self.name]

    @cached_property
    def raw(self) -> AsyncCollection[RawBSONDocument]:
        """The collection read as undecoded BSON (listings and export)."""
        raw: AsyncCollection[RawBSONDocument] = self.db.get_collection(  # type: ignore[assignment]
            self.name, codec_options=RAW)  # the driver types a collection by its database
        return raw

    async def get(self, kind: str, record_id: ObjectId) -> Document | None:
        query = by_id(kind, record_id)
        served, document = (self.prefetched.serve(self.name, query)
                            if self.prefetched is not None else (False, None))
        if not served:
            document = await self.collection.find_one(query, max_time_ms=self.max_time_ms)
        return document if document is not None and is_record(document) else None

    async def set_data(self, kind: str, record_id: ObjectId, data: dict[str, Any],
                       now: datetime, *, version: int | None) -> Document | None:
        """Replace `data` and bump the version, atomically; with `version`, only if the
        record is still at that version. None when nothing matched."""
        query: Document = {"_id": record_id, "kind": kind}
        if version is not None:
            query["version"] = version
        with self.write_window():
            return await self.collection.find_one_and_update(
                query, {"$set": {"data": data, "updated_at": now}, "$inc": {"version": 1}},
                return_document=ReturnDocument.AFTER)

    async def delete(self, kind: str, record_id: ObjectId, *, version: int | None) -> bool:
        query: Document = {"_id": record_id, "kind": kind}
        if version is not None:
            query["version"] = version
        with self.write_window():
            result = await self.collection.delete_one(query)
        return result.deleted_count == 1

    async def find(self, query: Document, sort: list[tuple[str, int]], limit: int
                   ) -> tuple[list[Document], bool]:
        """Up to `limit` matches, as many as fit in the response budget (at least one);
        True when the budget cut the list short.

        Read as raw BSON and decoded one by one only while they fit: a record decoded in
        Python takes up to ~11 times its BSON size, so a page of 500 records of 256 KiB
        would otherwise take over a gigabyte."""
        cursor = self.raw.find(query, sort=sort, limit=limit, max_time_ms=self.max_time_ms,
                               batch_size=self.batch_size)
        documents: list[Document] = []
        spent = 0
        try:
            async for raw in cursor:
                spent += len(raw.raw)
                if documents and spent > self.response_bytes:
                    return documents, True
                documents.append(decode(raw))
        finally:
            await cursor.close()
        return documents, False

    async def kinds(self) -> list[Document]:
        cursor = await self.collection.aggregate(
            [{"$match": IS_RECORD}, {"$group": {"_id": "$kind", "count": {"$sum": 1}}},
             {"$sort": {"_id": 1}}],
            maxTimeMS=self.max_time_ms)
        return await cursor.to_list()

    async def size(self) -> Document:
        """The collection's size in bytes and its document count (0 and 0 before it
        exists: MongoDB creates a collection on its first write)."""
        try:
            stats = await self.collection.database.command("collStats", self.collection.name)
        except OperationFailure as exc:
            if exc.code == NAMESPACE_NOT_FOUND:
                return {"bytes": 0, "documents": 0}
            raise
        return {"bytes": int(stats.get("size", 0)), "documents": int(stats.get("count", 0))}

    async def stream(self, without_kinds: Sequence[str] = ()
                     ) -> AsyncGenerator[Document, None]:
        """Every record, in batches of at most `export_batch_size` records and the response
        budget in bytes: the driver holds one batch as raw BSON, and a record is decoded
        only when its turn comes.

        No maxTimeMS here: a full export of a large tenant legitimately takes long."""
        query = {**IS_RECORD, "kind": {"$nin": list(without_kinds)}} if without_kinds \
            else IS_RECORD
        cursor = self.raw.find(query, sort=EXPORT_SORT,
                               batch_size=min(self.export_batch_size, self.batch_size))
        try:
            async for raw in cursor:
                yield decode(raw)
        finally:
            await cursor.close()

    async def user_indexes(self) -> list[Document]:
        cursor = await self.collection.list_indexes()
        return [dict(ix) async for ix in cursor if str(ix["name"]).startswith(USER_INDEX_PREFIX)]

    async def create_index(self, name: str, kind: str, keys: Sequence[tuple[str, int]]
                           ) -> None:
        # An index covers one kind only (queries always carry kind equality, so the planner
        # can use it). MongoDB >= 4.2 builds hold an exclusive lock only at the start and
        # end, and the await keeps the event loop free, so other requests go on meanwhile.
        # The build may outlast socketTimeoutMS: it runs under its own operation timeout.
        with pymongo.timeout(self.index_build_timeout):
            await self.collection.create_index(
                [("kind", 1), *keys], name=USER_INDEX_PREFIX + name,
                partialFilterExpression={"kind": kind})

    async def drop_index(self, name: str) -> None:
        await self.collection.drop_index(USER_INDEX_PREFIX + name)
