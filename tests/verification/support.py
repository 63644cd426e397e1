"""Following verification links through the API, their tokens read where Newman cannot:
the outbox (the suite's sender is off, so a queued message keeps its text)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.recovery.support import queued_token

VERIFICATION, CHANGE, NOTICE = "email_verification", "email_change", "email_change_notice"


async def verify(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/auth/verify-email", json={"token": token})


async def follow_link(client: httpx.AsyncClient, master: Any, email: str,
                      kind: str = VERIFICATION) -> httpx.Response:
    """Follow the newest link of `kind` mailed to `email`."""
    return await verify(client, await queued_token(master, email, kind))
