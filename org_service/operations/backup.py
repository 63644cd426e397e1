"""`org-service backup NAME --out FILE`: one organization, streamed into one file
(format: archive.py, docs/backup-format.md).

The organization's collection is held for the length of the backup (the lifecycle's hold,
as an index build takes it), so no rename or delete moves it away half way; the tenant
keeps working meanwhile, and each record is written as it was when it was read (a backup is
not a point-in-time snapshot of records written during it). Records and audit entries are
copied as the raw BSON the database sends, never decoded."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import IO, Any

from bson.raw_bson import RawBSONDocument
from pymongo.asynchronous.collection import AsyncCollection

from org_service.db import Document, utcnow
from org_service.operations.archive import BackupWriter
from org_service.operations.operator import Operator, OperatorError, service_version
from org_service.organizations.errors import Busy, Stale
from org_service.organizations.schemas import ACTIVE
from org_service.records.repository import RAW

BATCH = 1000
RENEW_EVERY = 20_000
# (section, documents written so far in it, documents expected in it if known)
Progress = Callable[[str, int, int | None], None]
# Not copied: the server's own, and the organization's state is its state now.
SKIPPED_INDEX_FIELDS = ("v", "ns")


def raw_collection(operator: Operator, name: str) -> AsyncCollection[RawBSONDocument]:
    raw: AsyncCollection[RawBSONDocument] = operator.db.get_collection(  # type: ignore[assignment]
        name, codec_options=RAW)  # the driver types a collection by its database
    return raw


async def raw_documents(collection: AsyncCollection[RawBSONDocument], query: Document
                        ) -> AsyncIterator[bytes]:
    cursor = collection.find(query, sort=[("_id", 1)], batch_size=BATCH)
    try:
        async for document in cursor:
            yield bytes(document.raw)
    finally:
        await cursor.close()


def index_specs(indexes: list[Any]) -> list[Document]:
    return [{k: v for k, v in spec.items() if k not in SKIPPED_INDEX_FIELDS}
            for spec in indexes if spec["name"] != "_id_"]


async def backup(operator: Operator, name: str, out: Path,
                 progress: Progress | None = None) -> Document:
    """Write the organization named `name` to `out`; its manifest. Written to a temporary
    file beside `out` and renamed at the end: `out` is a whole backup or untouched."""
    org = await operator.organization(name)
    if org["state"] != ACTIVE:
        raise OperatorError(f"'{name}' is {org['state']}: try again in a moment")
    lifecycle = operator.lifecycle
    try:
        hold = await lifecycle.hold(org["_id"], org["collection_name"], purpose="backup")
    except (Busy, Stale):
        raise OperatorError(f"'{name}' is being renamed, deleted or indexed: try again in a "
                            "moment") from None
    partial = out.with_name(f".{out.name}.partial")
    try:
        with partial.open("wb") as file:
            manifest = await _write(operator, org, hold, file, progress or (lambda *_: None))
            file.flush()
            os.fsync(file.fileno())
        partial.replace(out)
        return manifest
    finally:
        partial.unlink(missing_ok=True)
        await lifecycle.release(hold)


async def _write(operator: Operator, org: Document, hold: Document, file: IO[bytes],
                 progress: Progress) -> Document:
    org_id, collection = org["_id"], org["collection_name"]
    records_expected = await operator.db[collection].estimated_document_count()
    writer = BackupWriter(file, {
        "organization": {"id": str(org_id), "name": org["organization_name"],
                         "slug": org["slug"], "collection_name": collection},
        "created_at": utcnow(), "service_version": service_version()})
    lifecycle = operator.lifecycle

    async def renew() -> None:
        # The hold outlives a long backup only if renewed.
        await lifecycle.journal.advance(hold, lease_until=utcnow() + lifecycle.hold_lease)

    async def copy(section: str, collection: str, query: Document,
                   expected: int | None = None) -> None:
        """A section of raw documents straight from the database, renewing the hold on
        the way (LeaseLost stops the backup)."""
        writer.section(section)
        count = 0
        async for raw in raw_documents(raw_collection(operator, collection), query):
            writer.write_raw(raw)
            count += 1
            if count % BATCH == 0:
                progress(section, count, expected)
                if count % RENEW_EVERY == 0:
                    await renew()
        progress(section, count, count)

    writer.section("organization")
    writer.write({k: v for k, v in org.items() if k != "record_policies"})
    await copy("members", "members", {"organization_id": org_id})
    writer.section("indexes")
    for spec in index_specs(await (await operator.db[collection].list_indexes()).to_list(None)):
        writer.write(spec)
    writer.section("policies")
    for kind, policy in sorted((org.get("record_policies") or {}).items()):
        writer.write({"kind": kind, "read": policy["read"], "write": policy["write"]})
    await copy("records", collection, {}, records_expected)
    await copy("audit", "audit_log", {"organization_id": org_id})
    return writer.finish()
