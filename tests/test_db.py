"""The client's guarantees the failure model relies on: majority-acknowledged, retryable
writes and bounded waits."""

from __future__ import annotations

from typing import Any

from org_service.db import create_client


async def test_client_uses_majority_retryable_writes_and_bounded_timeouts(
        settings: Any) -> None:
    client = create_client("mongodb://127.0.0.1:9/?directConnection=true", settings)
    try:
        seconds = settings.MONGODB_TIMEOUT_MS / 1000
        assert client.write_concern.document == {"w": "majority"}
        assert client.options.retry_writes and client.options.retry_reads
        assert client.options.server_selection_timeout == seconds
        assert client.options.pool_options.connect_timeout == seconds
        assert client.options.pool_options.socket_timeout == 2 * seconds
    finally:
        await client.close()
