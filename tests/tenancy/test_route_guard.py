"""No route can forget the tenant context: every route but the public ones depends on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from pydantic import BaseModel

from org_service.deps import delete_target, lifecycle_tenant, tenant_context, tenant_reading_record
from org_service.main import create_app
from org_service.models import RequestModel

# The tenant-context dependencies, all built on tenancy.resolve_tenant: the general one, the
# two of rename/delete that can also finish an abandoned lifecycle operation, and the record
# read that rides along with the tenant lookup.
TENANT_CONTEXT = {tenant_context, lifecycle_tenant, delete_target, tenant_reading_record}

PUBLIC_PATHS = {"/org/create", "/org/get", "/admin/login", "/health", "/ready", "/metrics"}
DOCS_PATHS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def api_routes(app: FastAPI) -> Iterator[RouteContext]:
    """Every API route with its effective path and dependencies, included routers flattened
    (FastAPI keeps an included router as one entry of `app.routes`)."""
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIRoute):
            yield route


def calls(dependant: Dependant) -> Iterator[Callable[..., Any] | None]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from calls(dependency)


def test_every_non_public_route_depends_on_the_tenant_context() -> None:
    routes = list(api_routes(create_app()))
    assert {"/org/update", "/org/delete", "/admin/me", "/org/audit", "/org/create"} <= {
        route.path for route in routes}
    unguarded = [route.path for route in routes if route.path not in PUBLIC_PATHS
                 and not TENANT_CONTEXT & set(calls(route.dependant))]
    assert unguarded == []


def test_nothing_but_the_docs_bypasses_fastapi_routing() -> None:
    # A mounted app or a plain Starlette route would escape the check above.
    others = {route.path for route in iter_route_contexts(create_app().routes)
              if not isinstance(route.original_route, APIRoute)}
    assert others <= DOCS_PATHS


def test_the_check_catches_a_forgotten_dependency() -> None:
    app = create_app()

    @app.get("/org/forgotten")
    async def forgotten() -> dict[str, str]:
        return {}

    routes = {route.path: route for route in api_routes(app)}
    assert not TENANT_CONTEXT & set(calls(routes["/org/forgotten"].dependant))
    assert tenant_context in set(calls(routes["/admin/me"].dependant))


def test_every_request_body_forbids_unknown_fields() -> None:
    from tests.security.test_mass_assignment import DATA_BODIES

    bodies = 0
    for route in api_routes(create_app()):
        # Record bodies are the tenant's own free-form data (checked separately: they can
        # never set server-owned fields).
        if route.body_field is not None and not {
                (method, route.path) for method in route.methods} & set(DATA_BODIES):
            bodies += 1
            model = route.body_field.field_info.annotation
            assert isinstance(model, type) and issubclass(model, BaseModel), route.path
            assert issubclass(model, RequestModel), route.path
            assert model.model_config.get("extra") == "forbid", route.path
    assert bodies >= 5
