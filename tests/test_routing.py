"""The app's routes: every domain router's routes, matched without an included-router layer."""

from __future__ import annotations

from fastapi.routing import APIRoute

from org_service.audit.endpoints import router as audit_router
from org_service.auth.endpoints import member_router
from org_service.auth.endpoints import router as admin_router
from org_service.health import router as health_router
from org_service.main import create_app
from org_service.members import endpoints as members
from org_service.organizations.endpoints import router as organization_router
from org_service.records.endpoints import router as record_router
from org_service.records.schemas import BULK_MAX_BODY_BYTES

ROUTERS = (organization_router, admin_router, member_router, members.router, members.me_router,
           record_router, audit_router, health_router)


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
