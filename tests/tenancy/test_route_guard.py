"""No route can forget the tenant context: every route but the public ones depends on it,
and each declares the permission it needs (or that it only acts on the caller's own account)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from pydantic import BaseModel

from org_service.deps import TenantBearer, tenant_context
from org_service.main import create_app
from org_service.models import RequestModel

PUBLIC_PATHS = {"/org/create", "/org/get", "/admin/login", "/auth/login", "/auth/refresh",
                "/health", "/ready", "/metrics", "/invitations/{token}", "/invitations/accept",
                "/auth/password-reset", "/auth/password-reset/confirm", "/auth/verify-email",
                "/auth/verify-email/resend"}
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


def permissions(dependant: Dependant) -> list[str]:
    """What the route's tenant dependencies declare: a TenantBearer's permission, or that
    of a lifecycle dependency written as a function (`deps.needs`)."""
    return [call.permission for call in calls(dependant)
            if isinstance(call, TenantBearer) or hasattr(call, "permission")]


def test_every_non_public_route_depends_on_the_tenant_context_with_one_permission() -> None:
    routes = list(api_routes(create_app()))
    assert {"/org/update", "/org/delete", "/admin/me", "/org/audit", "/org/create"} <= {
        route.path_format for route in routes}
    declared = {(route.path_format, method): permissions(route.dependant)
                for route in routes if route.path_format not in PUBLIC_PATHS
                for method in route.methods}
    assert [key for key, found in declared.items() if len(found) != 1] == []
    assert declared[("/org/delete", "DELETE")] == ["org:delete"]
    assert declared[("/org/update", "PUT")] == ["org:update"]
    assert declared[("/admin/me", "GET")] == ["self"]
    assert declared[("/org/records/{kind}/{record_id}", "GET")] == ["records:read"]


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
    assert permissions(routes["/org/forgotten"].dependant) == []
    assert tenant_context in set(calls(routes["/admin/me"].dependant))


def test_every_request_body_forbids_unknown_fields() -> None:
    from tests.security.test_mass_assignment import DATA_BODIES

    bodies = 0
    for route in api_routes(create_app()):
        # Record bodies are the tenant's own free-form data (checked separately: they can
        # never set server-owned fields).
        if route.body_field is not None and not {
                (method, route.path_format) for method in route.methods} & set(DATA_BODIES):
            bodies += 1
            model = route.body_field.field_info.annotation
            assert isinstance(model, type) and issubclass(model, BaseModel), route.path
            assert issubclass(model, RequestModel), route.path
            assert model.model_config.get("extra") == "forbid", route.path
    assert bodies >= 5
