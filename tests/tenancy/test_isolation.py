"""One organization can never see or change another's: every protected route is tied to the
organization of the token, whatever a header or a body names."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers import Org, create_org, routable
from tests.tenancy.test_route_guard import PUBLIC_PATHS, api_routes

# A valid body for each protected route that takes one, naming the caller's own organization.
OWN_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PUT", "/org/update"): {"old_organization_name": "Acme",
                             "new_organization_name": "Acme Two"},
    ("DELETE", "/org/delete"): {"organization_name": "Acme"},
}


def protected_routes() -> list[tuple[str, str]]:
    from org_service.main import create_app

    return sorted(
        (method, route.path_format)
        for route in api_routes(create_app())
        if route.path_format not in PUBLIC_PATHS
        for method in route.methods
    )


async def snapshot(master: Any) -> dict[str, Any]:
    return {
        "organizations": await master["organizations"].find({}, {"updated_at": 0}).to_list(None),
        "admins": await master["members"].find({}).to_list(None),
        "collections": sorted(n for n in await master.list_collection_names()
                              if n.startswith("org_")),
    }


@pytest.fixture
async def two_orgs(client: httpx.AsyncClient) -> tuple[Org, Org]:
    return await create_org(client, "Acme"), await create_org(client, "Globex")


@pytest.mark.parametrize(("method", "path"), protected_routes())
async def test_other_tenants_header_is_refused_on_every_protected_route(
        client: httpx.AsyncClient, master: Any, two_orgs: tuple[Org, Org],
        method: str, path: str) -> None:
    acme, globex = two_orgs
    before = await snapshot(master)
    response = await client.request(
        method, routable(path), json=OWN_BODIES.get((method, path)),
        headers={**acme.auth, "X-Organization-ID": globex.id})
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "forbidden"
    assert await snapshot(master) == before


@pytest.mark.parametrize(("method", "path"), protected_routes())
async def test_every_protected_route_needs_a_token(client: httpx.AsyncClient, method: str,
                                                   path: str) -> None:
    response = await client.request(method, routable(path),
                                    json=OWN_BODIES.get((method, path)))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_matching_header_is_accepted(client: httpx.AsyncClient,
                                           two_orgs: tuple[Org, Org]) -> None:
    acme, _ = two_orgs
    response = await client.get("/admin/me", headers={**acme.auth, "X-Organization-ID": acme.id})
    assert response.status_code == 200
    assert response.json()["organization"]["id"] == acme.id


@pytest.mark.parametrize("value", ["", "not-an-id", "64b000000000000000000003"])
async def test_any_other_header_value_is_refused(client: httpx.AsyncClient,
                                                 two_orgs: tuple[Org, Org], value: str) -> None:
    acme, _ = two_orgs
    response = await client.get("/admin/me", headers={**acme.auth, "X-Organization-ID": value})
    assert response.status_code == 403


async def test_update_naming_another_organization_is_refused(
        client: httpx.AsyncClient, master: Any, two_orgs: tuple[Org, Org]) -> None:
    acme, globex = two_orgs
    before = await snapshot(master)
    response = await client.put("/org/update", headers=acme.auth, json={
        "old_organization_name": "Globex", "new_organization_name": "Globex Stolen",
        "email": "thief@example.com", "password": "stolen-password"})
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert await snapshot(master) == before
    assert (await client.get("/admin/me", headers=globex.auth)).status_code == 200


async def test_delete_naming_another_organization_is_refused(
        client: httpx.AsyncClient, master: Any, two_orgs: tuple[Org, Org]) -> None:
    acme, globex = two_orgs
    before = await snapshot(master)
    response = await client.request("DELETE", "/org/delete", headers=acme.auth,
                                    json={"organization_name": "Globex"})
    assert response.status_code == 403
    assert await snapshot(master) == before
    assert globex.collection_name in await master.list_collection_names()


async def test_audit_shows_only_the_callers_organization(
        client: httpx.AsyncClient, two_orgs: tuple[Org, Org]) -> None:
    acme, globex = two_orgs
    for org in (acme, globex):
        entries = (await client.get("/org/audit", headers=org.auth)).json()["entries"]
        assert entries
        assert {entry["organization_id"] for entry in entries} == {org.id}
