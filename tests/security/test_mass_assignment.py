"""Request models refuse unknown fields, so nobody can slip in an owner, a role or a hash."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers import Org, create_org
from tests.tenancy.test_isolation import snapshot

SMUGGLED: dict[str, Any] = {
    "organization_id": "64b000000000000000000000",
    "role": "super_admin",
    "password_hash": "$2b$04$abcdefghijklmnopqrstuvabcdefghijklmnopqrstuvwxyz01234",
    "_id": "64b000000000000000000000",
    "token_version": 99,
    "ver": 99,
}

# Every route with a request body, with a valid body for the organization "Acme".
BODIES: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/org/create", {"organization_name": "Newco", "email": "a@newco.example.com",
                             "password": "secure123"}),
    ("POST", "/org/get", {"organization_name": "Acme"}),
    ("PUT", "/org/update", {"old_organization_name": "Acme",
                            "new_organization_name": "Acme Two"}),
    ("DELETE", "/org/delete", {"organization_name": "Acme"}),
    ("POST", "/admin/login", {"email": "admin@acme.example.com", "password": "secure123"}),
]


@pytest.fixture
async def acme(client: httpx.AsyncClient) -> Org:
    return await create_org(client, "Acme")


def test_every_body_route_is_covered() -> None:
    from org_service.main import create_app
    from tests.tenancy.test_route_guard import api_routes

    with_body = {(method, route.path) for route in api_routes(create_app())
                 if route.body_field is not None for method in route.methods}
    assert with_body == {(method, path) for method, path, _ in BODIES}


@pytest.mark.parametrize(("method", "path", "body"), BODIES, ids=[p for _, p, _ in BODIES])
@pytest.mark.parametrize("field", list(SMUGGLED))
async def test_unknown_field_is_refused_and_nothing_changes(
        client: httpx.AsyncClient, master: Any, acme: Org, method: str, path: str,
        body: dict[str, Any], field: str) -> None:
    before = await snapshot(master)
    response = await client.request(method, path, headers=acme.auth,
                                    json={**body, field: SMUGGLED[field]})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["error"] == "validation_error"
    assert any(err["loc"][-1] == field and err["type"] == "extra_forbidden"
               for err in problem["errors"])
    assert await snapshot(master) == before


@pytest.mark.parametrize(("method", "path", "body"), BODIES, ids=[p for _, p, _ in BODIES])
async def test_the_same_bodies_without_extras_are_accepted(
        client: httpx.AsyncClient, acme: Org, method: str, path: str,
        body: dict[str, Any]) -> None:
    response = await client.request(method, path, headers=acme.auth, json=body)
    assert response.status_code in (200, 201), response.text
