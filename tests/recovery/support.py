"""Asking for a reset through the API, and reading its link where Newman cannot: the
outbox (the suite's sender is off, so a queued message keeps its text)."""

from __future__ import annotations

import re
from typing import Any

import httpx

# The default URL templates of reset and verification links: the token in the fragment.
LINK = re.compile(r"http://\S+/(?:reset-password|verify-email)#token=([A-Za-z0-9_-]{43})")


def token_in(text: str) -> str:
    """The token of the reset or verification link in a mail's text (the default URL
    templates)."""
    found = LINK.search(text)
    assert found, text
    return found.group(1)


async def request_reset(client: httpx.AsyncClient, email: str) -> httpx.Response:
    return await client.post("/auth/password-reset", json={"email": email})


async def queued_token(master: Any, email: str, kind: str = "password_reset") -> str:
    """The token of the newest mail of `kind` queued for `email`."""
    [message] = await master["outbox"].find(
        {"to": email, "kind": kind}).sort("_id", -1).limit(1).to_list(None)
    return token_in(message["text"])


async def confirm(client: httpx.AsyncClient, token: str,
                  password: str = "a-new-password") -> httpx.Response:
    return await client.post("/auth/password-reset/confirm",
                             json={"token": token, "password": password})
