"""Lifecycle tests run their own app instances on a database of their own, so restarts,
failpoints and short leases never touch the session app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient

LIFECYCLE_DB = "org_service_lifecycle"


@pytest.fixture
async def lifecycle_settings(settings: Any, raw_client: AsyncMongoClient[Any]
                             ) -> AsyncIterator[Any]:
    # Short fence and lease so recovery and settling happen within a test; the sweep is
    # left to startup so a test decides when recovery runs.
    await raw_client.drop_database(LIFECYCLE_DB)
    yield settings.model_copy(update={
        "MASTER_DB_NAME": LIFECYCLE_DB,
        "TENANT_REQUEST_TIMEOUT_MS": 200,
        "LIFECYCLE_LEASE_SECONDS": 0.5,
        "LIFECYCLE_SWEEP_SECONDS": 3600,
    })
    await raw_client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})


@pytest.fixture
def lifecycle_db(raw_client: AsyncMongoClient[Any], lifecycle_settings: Any) -> Any:
    return raw_client[LIFECYCLE_DB]
