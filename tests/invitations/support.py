"""Inviting through the API, and reading the token out of an accept link."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.helpers import Bearer


async def invite(client: httpx.AsyncClient, by: Bearer, email: str, role: str = "employee",
                 **fields: Any) -> dict[str, Any]:
    response = await client.post("/org/invitations", headers=by.auth,
                                 json={"email": email, "role": role, **fields})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def token_of(link: str) -> str:
    """The token at the end of an accept link (the default INVITE_URL_TEMPLATE)."""
    return urlsplit(link).path.rsplit("/", 1)[1]


async def accept(client: httpx.AsyncClient, token: str, name: str = "New Person",
                 password: str = "secure123") -> httpx.Response:
    return await client.post("/invitations/accept",
                             json={"token": token, "name": name, "password": password})
