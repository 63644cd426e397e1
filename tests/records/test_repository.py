"""Every record read the repository sends carries maxTimeMS (watched on the wire)."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from pymongo import AsyncMongoClient, monitoring

from org_service.pagination import SortOrder
from org_service.records.repository import RecordRepository
from org_service.tenancy import TenantContext


class Commands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.sent.append((event.command_name, dict(event.command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_reads_carry_max_time_ms(mongo_url: str, settings) -> None:
    listener = Commands()
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url, event_listeners=[listener])
    try:
        repo = RecordRepository(client[settings.MASTER_DB_NAME], max_time_ms=1234,
                                export_batch_size=10, index_build_timeout=60)
        tenant = TenantContext(claims=None, member={},  # type: ignore[arg-type]
                               organization={"_id": ObjectId(), "collection_name": "org_probe"})
        records = repo.for_tenant(tenant)
        assert records.collection.name == "org_probe"
        order = SortOrder(("created_at", "_id"))
        await records.get("tasks", ObjectId())
        await records.find({"kind": "tasks"}, order.sort, 5)
        await records.kinds()
        reads = [cmd for name, cmd in listener.sent if name in ("find", "aggregate")]
        assert len(reads) == 3
        assert all(cmd["maxTimeMS"] == 1234 for cmd in reads)
        assert all(cmd.get("find", cmd.get("aggregate")) == "org_probe" for cmd in reads)
    finally:
        await client.close()
