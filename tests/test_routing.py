"""The app's routes: every domain router's routes, matched without an included-router layer."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from org_service.main import ROUTERS, create_app
from org_service.records.schemas import BULK_MAX_BODY_BYTES
from tests.helpers import routable


def test_every_route_of_every_router_is_on_the_app_itself() -> None:
    # Since FastAPI 0.137 an included router is one node matched through a per-request
    # layer; ours are put on the app route by route (main.add_routes), which costs less.
    app = create_app()
    api_routes = [route for route in app.routes if isinstance(route, APIRoute)]
    others = {getattr(route, "path", type(route).__name__) for route in app.routes
              if not isinstance(route, APIRoute)}
    assert others == {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
    on_app = {(route.path, frozenset(route.methods)) for route in api_routes}
    in_routers = {(route.path, frozenset(route.methods))
                  for router in ROUTERS for route in router.routes}
    assert on_app == in_routers


def test_a_router_route_keeps_what_its_router_gave_it() -> None:
    route = next(route for route in create_app().routes if isinstance(route, APIRoute)
                 and route.path == "/org/records/{kind}/bulk")
    assert route.tags == ["Tenant records"]
    assert route.max_body_size == BULK_MAX_BODY_BYTES
    assert 401 in route.responses and 403 in route.responses


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/org/create/"), ("POST", "/org/get/"), ("PUT", "/org/update/"),
    ("GET", "/admin/me/"), ("GET", "/org/records/people/"), ("GET", "/health/"),
    ("GET", "/ready/"), ("GET", "/openapi.json/"), ("GET", "/no/such/path"),
])
async def test_a_path_with_a_trailing_slash_is_the_json_404_of_any_unknown_path(
        client: httpx.AsyncClient, master: Any, method: str, path: str) -> None:
    # Starlette's default answered these 307 with an empty body and a Location; the routes
    # are the paths without the slash, and anything else is an unknown path.
    response = await client.request(method, path, json={
        "organization_name": "Acme Corp", "email": "admin@acme.com", "password": "secure123"})
    assert response.status_code == 404, response.text
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"error": "not_found", "detail": "Not Found"}
    assert await master["organizations"].count_documents({}) == 0


def _documented_methods() -> list[tuple[str, set[str]]]:
    paths = create_app().openapi()["paths"]
    return [(path, {method.upper() for method in item}) for path, item in paths.items()]


@pytest.mark.parametrize(("path", "methods"), _documented_methods())
async def test_a_405_allows_every_method_the_path_has(
        client: httpx.AsyncClient, path: str, methods: set[str]) -> None:
    # A path's methods are often split over several routes (GET and POST /org/records/{kind}
    # are two): Starlette's 405 named only the first route's. The document is the truth.
    response = await client.request("TRACE", routable(path))
    assert response.status_code == 405, response.text
    assert set(response.headers["allow"].split(", ")) == methods
    assert response.json()["error"] == "method_not_allowed"
