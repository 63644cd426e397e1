"""Shortcuts the record tests share."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers import Org


async def add(client: httpx.AsyncClient, org: Org, kind: str, data: dict[str, Any]
              ) -> dict[str, Any]:
    response = await client.post(f"/org/records/{kind}", json=data, headers=org.auth)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def add_many(client: httpx.AsyncClient, org: Org, kind: str,
                   items: list[dict[str, Any]]) -> list[str]:
    response = await client.post(f"/org/records/{kind}/bulk", json=items, headers=org.auth)
    assert response.status_code == 201, response.text
    ids: list[str] = response.json()["ids"]
    return ids


def problem_locs(response: httpx.Response) -> list[list[Any]]:
    return [p["loc"] for p in response.json()["errors"]]
