"""Audit entries expire AUDIT_RETENTION_DAYS after they were written (a TTL index on `at`),
and startup brings an index on `at` left by an earlier deployment to that setting."""

from __future__ import annotations

from typing import Any

import pytest

from org_service.audit.repository import AuditRepository

DAY = 24 * 3600


async def indexes_on_at(master: Any) -> list[dict[str, Any]]:
    found = await master["audit_log"].index_information()
    return [spec for spec in found.values() if list(spec["key"]) == [("at", 1)]]


async def test_entries_expire_after_the_retention_period(master: Any, settings: Any) -> None:
    assert settings.AUDIT_RETENTION_DAYS == 365
    [ttl] = await indexes_on_at(master)
    assert ttl["expireAfterSeconds"] == 365 * DAY


@pytest.mark.parametrize("existing", [
    {"name": "at_1"},                                          # a plain index on `at`
    {"name": "retention", "expireAfterSeconds": 30 * DAY},     # another retention period
    {"name": "at_recent", "partialFilterExpression": {"outcome": "success"}},
], ids=["plain", "other-ttl", "other-options"])
async def test_startup_replaces_an_index_on_at_with_other_options(
        master: Any, existing: dict[str, Any]) -> None:
    collection = master["audit_log"]
    for name, spec in (await collection.index_information()).items():
        if list(spec["key"]) == [("at", 1)]:
            await collection.drop_index(name)
    await collection.create_index("at", **existing)
    repository = AuditRepository(master, retention_seconds=90 * DAY)
    try:
        await repository.ensure_indexes()
        await repository.ensure_indexes()  # idempotent: every process runs it at startup
        [ttl] = await indexes_on_at(master)
        assert ttl["expireAfterSeconds"] == 90 * DAY
        assert "partialFilterExpression" not in ttl
    finally:
        # Back to what the session app declared, for the other tests.
        await AuditRepository(master, retention_seconds=365 * DAY).ensure_indexes()
    [ttl] = await indexes_on_at(master)
    assert ttl["expireAfterSeconds"] == 365 * DAY
