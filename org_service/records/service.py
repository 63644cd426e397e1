"""The rules of tenant records: shape and size checks, versions and If-Match, merge patch,
paging, export and admin-declared indexes. Every method starts from the tenant context."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import json_merge_patch
from bson import ObjectId
from pymongo.errors import ExecutionTimeout, OperationFailure

from org_service.config import Settings
from org_service.db import Document, object_id, utcnow
from org_service.errors import (
    Conflict,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    ServiceUnavailable,
    Unprocessable,
)
from org_service.organizations.errors import Stale
from org_service.organizations.lifecycle import LifecycleManager
from org_service.organizations.repository import OrganizationRepository
from org_service.organizations.schemas import ACTIVE, public
from org_service.pagination import CursorCodec, Pager, SortOrder
from org_service.records import policy
from org_service.records.query import compile_filter, compile_sort, field_path
from org_service.records.repository import USER_INDEX_PREFIX, RecordRepository, TenantRecords
from org_service.records.schemas import (
    IF_MATCH_PATTERN,
    BulkCreated,
    CollectionSize,
    IndexCreate,
    IndexField,
    IndexInfo,
    IndexList,
    KindCount,
    KindList,
    KindPolicy,
    Record,
    RecordPage,
    RecordPolicy,
    RecordQuery,
    RecordStats,
)
from org_service.records.validation import (
    check_shape,
    check_size,
    invalid,
    problem,
    shape_problems,
    size_problem,
)
from org_service.tenancy import TenantContext

log = logging.getLogger(__name__)
PATCH_ATTEMPTS = 3  # without If-Match, a patch that lost a race is re-applied this often
INDEX_CONFLICTS = {85, 86}  # IndexOptionsConflict, IndexKeySpecsConflict
INDEX_NOT_FOUND = 27
EXPORT_CHUNK_BYTES = 64 * 1024


def to_record(doc: Document) -> Record:
    # Read from our own collection, written only through this service: no re-validation.
    return Record.model_construct(
        id=str(doc["_id"]), kind=doc["kind"], data=doc["data"], version=doc["version"],
        created_at=doc["created_at"], updated_at=doc["updated_at"])


def expected_version(if_match: str | None) -> int | None:
    """The version an If-Match header demands: `3`, `"3"` or `W/"3"`; `*` (or none) = any."""
    if if_match is None:
        return None
    found = re.fullmatch(IF_MATCH_PATTERN, if_match)
    if found is None:
        raise Unprocessable("If-Match must be a record version, e.g. If-Match: 3")
    version = found[3]  # the digits; None for `*`
    return int(version) if version else None


def _not_found(kind: str, record_id: str) -> NotFound:
    return NotFound(f"No {kind} record with id {record_id[:64]!r}")


class RecordService:
    def __init__(self, repository: RecordRepository, settings: Settings,
                 cursors: CursorCodec, lifecycle: LifecycleManager,
                 organizations: OrganizationRepository) -> None:
        self.repository = repository
        self.organizations = organizations
        self.lifecycle = lifecycle
        self.max_record_bytes = settings.MAX_RECORD_BYTES
        self.max_indexes = settings.MAX_INDEXES_PER_ORG
        self.index_wait = settings.INDEX_BUILD_WAIT_SECONDS
        self.retry_after = settings.RETRY_AFTER_SECONDS
        self.cursors = cursors
        # Index builds still running in this process (kept referenced until they end).
        self._builds: set[asyncio.Task[None]] = set()

    def _check_data(self, data: Any, loc: tuple[str | int, ...], label: str) -> None:
        check_shape(data, loc)
        check_size(data, self.max_record_bytes, label)

    def _new_document(self, kind: str, data: dict[str, Any]) -> Document:
        now = utcnow()
        return {"_id": ObjectId(), "kind": kind, "data": data, "version": 1,
                "created_at": now, "updated_at": now}

    # --- single records -------------------------------------------------------------

    async def create(self, tenant: TenantContext, kind: str, data: dict[str, Any]) -> Record:
        policy.require(tenant, kind, "write")
        self._check_data(data, ("body",), "the record")
        document = self._new_document(kind, data)
        await self.repository.for_tenant(tenant).insert(document)
        return to_record(document)

    async def create_many(self, tenant: TenantContext, kind: str,
                          items: list[dict[str, Any]]) -> BulkCreated:
        policy.require(tenant, kind, "write")
        problems: list[dict[str, Any]] = []
        too_large: list[str] = []
        for i, data in enumerate(items):
            problems.extend(shape_problems(data, ("body", i)))
            if not problems and (msg := size_problem(data, self.max_record_bytes,
                                                     f"item {i}")):
                too_large.append(msg)
        if problems:
            raise invalid(*problems[:50])
        if too_large:
            raise PayloadTooLarge(f"{len(too_large)} item(s) too large, nothing was written: "
                                  + "; ".join(too_large[:10]))
        documents = [self._new_document(kind, data) for data in items]
        await self.repository.for_tenant(tenant).insert_all(documents)
        return BulkCreated(count=len(documents), ids=[str(d["_id"]) for d in documents])

    async def get(self, tenant: TenantContext, kind: str, record_id: str) -> Record:
        policy.require(tenant, kind, "read")
        oid = object_id(record_id)
        document = await self.repository.for_tenant(tenant).get(kind, oid) if oid else None
        if document is None:
            raise _not_found(kind, record_id)
        return to_record(document)

    async def _missing_or_stale(self, records: TenantRecords, kind: str, oid: ObjectId,
                                record_id: str, version: int | None) -> Exception:
        current = await records.get(kind, oid)
        if current is None:
            return _not_found(kind, record_id)
        return PreconditionFailed(
            f"The record is at version {current['version']}, not {version}: "
            "read it again and retry with its current version")

    async def replace(self, tenant: TenantContext, kind: str, record_id: str,
                      data: dict[str, Any], if_match: str | None) -> Record:
        policy.require(tenant, kind, "write")
        version = expected_version(if_match)
        self._check_data(data, ("body",), "the record")
        oid = object_id(record_id)
        if oid is None:
            raise _not_found(kind, record_id)
        records = self.repository.for_tenant(tenant)
        updated = await records.set_data(kind, oid, data, utcnow(), version=version)
        if updated is None:
            raise await self._missing_or_stale(records, kind, oid, record_id, version)
        return to_record(updated)

    async def patch(self, tenant: TenantContext, kind: str, record_id: str,
                    patch: dict[str, Any], if_match: str | None) -> Record:
        """RFC 7396 merge patch: read, merge, write back only if nobody changed it since."""
        policy.require(tenant, kind, "write")
        version = expected_version(if_match)
        check_shape(patch, ("body",))
        oid = object_id(record_id)
        if oid is None:
            raise _not_found(kind, record_id)
        records = self.repository.for_tenant(tenant)
        for _ in range(PATCH_ATTEMPTS):
            current = await records.get(kind, oid)
            if current is None:
                raise _not_found(kind, record_id)
            if version is not None and current["version"] != version:
                raise await self._missing_or_stale(records, kind, oid, record_id, version)
            data = json_merge_patch.merge(current["data"], patch)
            check_size(data, self.max_record_bytes, "the patched record")
            updated = await records.set_data(kind, oid, data, utcnow(),
                                             version=current["version"])
            if updated is not None:
                return to_record(updated)
            if version is not None:
                raise await self._missing_or_stale(records, kind, oid, record_id, version)
        raise Conflict("The record kept changing while the patch was applied; retry")

    async def delete(self, tenant: TenantContext, kind: str, record_id: str,
                     if_match: str | None) -> None:
        policy.require(tenant, kind, "write")
        version = expected_version(if_match)
        oid = object_id(record_id)
        if oid is None:
            raise _not_found(kind, record_id)
        records = self.repository.for_tenant(tenant)
        if not await records.delete(kind, oid, version=version):
            raise await self._missing_or_stale(records, kind, oid, record_id, version)

    # --- listing and querying --------------------------------------------------------

    def _pager(self, tenant: TenantContext, kind: str, order: SortOrder, limit: int,
               after: str | None) -> Pager:
        scope = f"records:{tenant.organization_id}:{kind}:{','.join(order.fields)}:" \
                f"{order.direction}"
        return Pager(self.cursors, order, scope=scope, limit=limit, after=after)

    async def _page(self, tenant: TenantContext, kind: str, query: Document, pager: Pager
                    ) -> RecordPage:
        try:
            documents, cut = await self.repository.for_tenant(tenant).find(
                pager.filter({"kind": kind, **query}), pager.sort, pager.fetch_limit)
        except ExecutionTimeout:
            raise ServiceUnavailable(
                "The query ran longer than QUERY_MAX_TIME_MS and was stopped: narrow the "
                "filter or declare an index on its fields (POST /org/indexes)",
                retry_after=self.retry_after) from None
        items, next_cursor = pager.page(documents, cut=cut)
        return RecordPage.model_construct(items=[to_record(d) for d in items], next=next_cursor)

    async def list(self, tenant: TenantContext, kind: str, *, limit: int, after: str | None,
                   descending: bool) -> RecordPage:
        policy.require(tenant, kind, "read")
        order = compile_sort({"created_at": -1 if descending else 1})
        return await self._page(tenant, kind, {}, self._pager(tenant, kind, order, limit, after))

    async def query(self, tenant: TenantContext, kind: str, body: RecordQuery) -> RecordPage:
        policy.require(tenant, kind, "read")
        query = compile_filter(body.filter)
        order = compile_sort(body.sort)
        pager = self._pager(tenant, kind, order, body.limit, body.after)
        # The compiled filter only has data.* paths, $and and $or: `kind` cannot be overridden.
        return await self._page(tenant, kind, query, pager)

    async def kinds(self, tenant: TenantContext) -> KindList:
        rows = await self.repository.for_tenant(tenant).kinds()
        hidden = set(policy.hidden_kinds(tenant))
        return KindList(kinds=[KindCount(kind=r["_id"], count=r["count"]) for r in rows
                               if r["_id"] not in hidden])

    # --- per-kind policies -----------------------------------------------------------

    def get_policy(self, tenant: TenantContext, kind: str) -> KindPolicy:
        stored = policy.stored_policy(tenant, kind)
        current = stored or policy.DEFAULT
        return KindPolicy(kind=kind, read=current.read, write=current.write,
                          default=stored is None)

    async def set_policy(self, tenant: TenantContext, kind: str, body: RecordPolicy
                         ) -> KindPolicy:
        wanted = policy.normalized(body)
        unread = [role for role in wanted.write if role not in wanted.read]
        if unread:
            raise invalid(problem(("body", "write"), f"a role that writes must also read: "
                                                     f"add {', '.join(unread)} to read"))
        org = await self.organizations.update(
            tenant.organization["_id"], {f"record_policies.{kind}": wanted.model_dump()},
            expect={"state": ACTIVE})
        if org is None:
            raise Stale()
        return KindPolicy(kind=kind, read=wanted.read, write=wanted.write, default=False)

    async def stats(self, tenant: TenantContext) -> RecordStats:
        records = self.repository.for_tenant(tenant)
        size = await records.size()
        return RecordStats(
            kinds=[KindCount(kind=r["_id"], count=r["count"]) for r in await records.kinds()],
            collection=CollectionSize(name=tenant.collection_name, bytes=size["bytes"],
                                      documents=size["documents"]))

    # --- export ----------------------------------------------------------------------

    async def export(self, tenant: TenantContext) -> AsyncIterator[bytes]:
        """NDJSON: an organization line, one line per record, and an end line with the count
        (a stream cut short by a failure lacks it). Sent in chunks of ~EXPORT_CHUNK_BYTES, so
        memory stays at one database batch plus one chunk."""
        documents = self.repository.for_tenant(tenant).stream(
            without_kinds=policy.hidden_kinds(tenant))
        # Read the first batch before answering: a database down now is still a clean 503.
        first = await anext(documents, None)
        return self._ndjson(tenant, first, documents)

    async def _ndjson(self, tenant: TenantContext, first: Document | None,
                      documents: AsyncGenerator[Document, None]) -> AsyncIterator[bytes]:
        header = {"type": "organization",
                  "organization": public(tenant.organization).model_dump(mode="json")}
        chunk = bytearray(_line(header))
        count = 0

        async def every() -> AsyncIterator[Document]:
            if first is not None:
                yield first
                async for document in documents:
                    yield document

        try:
            async for document in every():
                chunk += b'{"type":"record","record":'
                chunk += to_record(document).model_dump_json().encode()
                chunk += b"}\n"
                count += 1
                if len(chunk) >= EXPORT_CHUNK_BYTES:
                    yield bytes(chunk)
                    chunk.clear()
        finally:  # a client that went away closes the database cursor now, not at GC
            await documents.aclose()
        chunk += _line({"type": "end", "records": count})
        yield bytes(chunk)

    # --- indexes ---------------------------------------------------------------------

    async def list_indexes(self, tenant: TenantContext) -> IndexList:
        ready = await self.repository.for_tenant(tenant).user_indexes()
        infos = [_index_info(ix) for ix in ready]
        building = await self.lifecycle.journal.for_organization(tenant.organization["_id"])
        declared = (building or {}).get("index")
        if declared is not None and declared["name"] not in {info.name for info in infos}:
            infos.append(IndexInfo.model_validate({**declared, "state": "building"}))
        return IndexList(indexes=sorted(infos, key=lambda i: i.name), limit=self.max_indexes)

    async def create_index(self, tenant: TenantContext, body: IndexCreate) -> IndexInfo:
        keys = [("data." + field_path(f.path, ("body", "fields", i, "path")), f.order)
                for i, f in enumerate(body.fields)]
        if len({k for k, _ in keys}) != len(keys):
            # 409, not 422: the document cannot state it (JSON Schema compares whole items).
            raise Conflict("Each field may appear once in an index")
        building = IndexInfo(name=body.name, kind=body.kind, fields=body.fields, state="building")
        # The build holds the organization's collection: no rename or delete moves it
        # meanwhile, and one index change at a time keeps the cap a count in the database.
        hold = await self._hold(tenant, index=building.model_dump(exclude={"state"}))
        records = self.repository.for_tenant(tenant)
        try:
            existing = {_index_info(ix).name for ix in await records.user_indexes()}
            if body.name in existing:
                raise Conflict(f"An index named {body.name!r} already exists")
            if len(existing) >= self.max_indexes:
                raise Conflict(f"An organization may declare at most {self.max_indexes} "
                               "indexes; drop one first")
        except BaseException:
            await self.lifecycle.release(hold)
            raise

        async def build() -> None:
            try:
                await records.create_index(body.name, body.kind, keys)
            finally:
                await self.lifecycle.release(hold)

        task = asyncio.create_task(build())
        self._builds.add(task)
        task.add_done_callback(lambda t: self._forget(tenant.organization_id, body.name, t))
        done, _ = await asyncio.wait({task}, timeout=self.index_wait)
        if not done:
            return building
        try:
            task.result()
        except OperationFailure as exc:
            if exc.code in INDEX_CONFLICTS:
                raise Conflict("An index on the same fields already exists under "
                               "another name") from None
            raise
        return building.model_copy(update={"state": "ready"})

    def _forget(self, organization_id: str, name: str, task: asyncio.Task[None]) -> None:
        self._builds.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.warning("index build %s of organization %s failed: %s",
                        name, organization_id, error)

    async def drop_index(self, tenant: TenantContext, name: str) -> None:
        hold = await self._hold(tenant)
        try:
            await self.repository.for_tenant(tenant).drop_index(name)
        except OperationFailure as exc:
            if exc.code == INDEX_NOT_FOUND:
                raise NotFound(f"No index named {name[:64]!r}") from None
            raise
        finally:
            await self.lifecycle.release(hold)

    async def _hold(self, tenant: TenantContext, **fields: Any) -> Document:
        return await self.lifecycle.hold(tenant.organization["_id"], tenant.collection_name,
                                         **fields)


def _line(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode() + b"\n"


def _index_info(index: Document) -> IndexInfo:
    keys = list(index["key"].items())[1:]  # the first key is always "kind"
    return IndexInfo(
        name=str(index["name"]).removeprefix(USER_INDEX_PREFIX),
        kind=str(index.get("partialFilterExpression", {}).get("kind", "")),
        fields=[IndexField(path=key.removeprefix("data."), order=1 if order == 1 else -1)
                for key, order in keys],
        state="ready")
