"""Following verification links through the API, their tokens read where Newman cannot:
the outbox (the suite's sender is off, so a queued message keeps its text)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.recovery.support import queued_token

VERIFICATION, CHANGE, NOTICE = "email_verification", "email_change", "email_change_notice"


async def verify(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/auth/verify-email", json={"token": token})


async def follow_link(client: httpx.AsyncClient, master: Any, email: str,
                      kind: str = VERIFICATION) -> httpx.Response:
    """Follow the newest link of `kind` mailed to `email`."""
    return await verify(client, await queued_token(master, email, kind))


class HeldWrites:
    """A stand-in for one repository method: every call waits until the test releases
    it, so concurrent requests are all at that write (their checks passed) before any
    writes. `arrived`: how many are waiting."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, target: Any, name: str) -> None:
        self.real = getattr(target, name)
        self.arrived = 0
        self.release = asyncio.Event()
        monkeypatch.setattr(target, name, self)

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.arrived += 1
        await self.release.wait()
        return await self.real(*args, **kwargs)

    async def race(self, client: httpx.AsyncClient, token: str) -> list[int]:
        """Follow link `token` twice at once, both held at this write until both are
        there; the two answers' statuses, sorted."""
        racing = [asyncio.create_task(verify(client, token)) for _ in range(2)]
        for _ in range(2000):  # a state, not a time: the bound only stops a broken run
            if self.arrived == 2:
                break
            await asyncio.sleep(0.005)
        assert self.arrived == 2
        self.release.set()
        return sorted(response.status_code for response in await asyncio.gather(*racing))
