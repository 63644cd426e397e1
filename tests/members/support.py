"""Building a team through the API: an organization, members with roles, their tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from tests.helpers import DEFAULT_PASSWORD, Bearer, create_org


@dataclass
class Person(Bearer):
    id: str
    email: str
    role: str
    token: str


async def member_login(client: httpx.AsyncClient, email: str,
                       password: str = DEFAULT_PASSWORD) -> httpx.Response:
    return await client.post("/auth/login", json={"email": email, "password": password})


async def add(client: httpx.AsyncClient, by: Bearer, role: str, name: str,
              **fields: Any) -> Person:
    """A member added by `by` (an owner or admin), logged in."""
    email = f"{name.lower().replace(' ', '.')}@{role}.example.com"
    response = await client.post("/org/members", headers=by.auth, json={
        "email": email, "password": DEFAULT_PASSWORD, "name": name, "role": role, **fields})
    assert response.status_code == 201, response.text
    logged_in = await member_login(client, email)
    assert logged_in.status_code == 200, logged_in.text
    return Person(response.json()["id"], email, role, logged_in.json()["access_token"])


async def team(client: httpx.AsyncClient, name: str = "Acme") -> dict[str, Any]:
    """An organization with one member of each role (the owner is its creator)."""
    org = await create_org(client, name)
    me = await client.get("/me", headers=org.auth)
    owner = Person(me.json()["id"], org.email, "owner", org.token)
    admin = await add(client, owner, "admin", f"{name} Admin")
    manager = await add(client, owner, "manager", f"{name} Manager")
    employee = await add(client, owner, "employee", f"{name} Employee",
                         manager_id=manager.id)
    return {"org": org, "owner": owner, "admin": admin, "manager": manager,
            "employee": employee}
