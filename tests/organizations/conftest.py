"""Lifecycle tests run their own app instances on a database of their own, so restarts,
failpoints and short leases never touch the session app.

A database of their own per test, too (dropped afterwards): a previous test's straggler (a
settle running late in the background, a server-side write held by a failpoint) lands in
that test's database, never in this one's, so a consistency check sees only what its own
test did, whatever ran before it."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient

LIFECYCLE_DB_PREFIX = "org_service_lifecycle_"
_numbers = itertools.count()


@pytest.fixture
async def lifecycle_settings(settings: Any, raw_client: AsyncMongoClient[Any]
                             ) -> AsyncIterator[Any]:
    # Short fence and lease so recovery and settling happen within a test; the sweep is
    # left to startup so a test decides when recovery runs.
    name = f"{LIFECYCLE_DB_PREFIX}{next(_numbers)}"
    await raw_client.drop_database(name)
    yield settings.model_copy(update={
        "MASTER_DB_NAME": name,
        "TENANT_REQUEST_TIMEOUT_MS": 200,
        "LIFECYCLE_LEASE_SECONDS": 0.5,
        "LIFECYCLE_SWEEP_SECONDS": 3600,
    })
    await raw_client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
    await raw_client.drop_database(name)


@pytest.fixture
def lifecycle_db(raw_client: AsyncMongoClient[Any], lifecycle_settings: Any) -> Any:
    return raw_client[lifecycle_settings.MASTER_DB_NAME]
