"""What every operation of the OpenAPI document says that no route states by itself.

Some answers come from the layers around the routes, not from a route: the request id on
every answer, a 503 when the process sheds load, a 413 or 415 for any body, a 401/403/429
for any tenant route. They are stated here once, from what each operation already is (has
a body, has parameters, needs a bearer token), so a route added anywhere gets them without
a hand edit, and a client generated from the document expects what the server sends.
"""

from __future__ import annotations

from typing import Any

from org_service.observability import REQUEST_ID_HEADER, REQUEST_ID_PATTERN

ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
_SECONDS = {"type": "string", "pattern": "^[1-9][0-9]*$"}

# Answers any operation of a kind may give, with the headers each always carries.
CATALOGUE: dict[str, tuple[str, dict[str, Any]]] = {
    "401": ("No valid access token (or one whose session has ended)", {
        "WWW-Authenticate": {"required": True, "schema": {"type": "string", "pattern": "^Bearer"},
                             "description": "The bearer challenge (RFC 6750, RFC 9470)"}}),
    "403": ("The token's role, state or organization does not permit this", {}),
    "413": ("The body is larger than this route accepts", {}),
    "415": ("The body is not sent as JSON (Content-Type: application/json or "
            "application/*+json)", {}),
    "422": ("The request breaks a rule of the document (or one the description states)", {}),
    "429": ("Too many requests (of this organization, client address or email); retry after "
            "Retry-After seconds", {
                "Retry-After": {"required": True, "schema": _SECONDS,
                                "description": "Seconds to wait before retrying"}}),
    "500": ("An unexpected error; quote request_id when reporting it", {}),
    "503": ("The database is unavailable or the process is at capacity; retry after "
            "Retry-After seconds", {
                "Retry-After": {"required": True, "schema": _SECONDS,
                                "description": "Seconds to wait before retrying"}}),
}

REQUEST_ID_RESPONSE = {REQUEST_ID_HEADER: {
    "required": True, "schema": {"type": "string", "pattern": REQUEST_ID_PATTERN},
    "description": "The request's id: the caller's X-Request-ID if it was sane, else a "
                   "fresh one; it is in the server's log line of the request"}}
REQUEST_ID_PARAMETER = {
    "name": REQUEST_ID_HEADER, "in": "header", "required": False,
    "schema": {"type": "string"},
    "description": f"Optional id to trace the request by. Any value is accepted: one that "
                   f"matches `{REQUEST_ID_PATTERN}` is echoed in the answer's "
                   f"{REQUEST_ID_HEADER}, any other is replaced by a fresh id"}


# Schemas written by hand (a rule language pydantic cannot derive, recursive), by name.
_COMPONENTS: dict[str, dict[str, Any]] = {}


def component(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Put `schema` in the document's components as `name`; returns the reference to it."""
    _COMPONENTS[name] = schema
    return ref(name)


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def complete(document: dict[str, Any], *, unshed: frozenset[str]) -> dict[str, Any]:
    """Add the catalogue's answers and headers to every operation of `document` (in place).
    `unshed`: paths the admission control never sheds (no 503 at capacity)."""
    components = document.setdefault("components", {})
    components.setdefault("schemas", {}).update(_COMPONENTS)
    # Each header once, referred to from every answer that carries it.
    components["headers"] = {**REQUEST_ID_RESPONSE, **{
        name: header for _, headers in CATALOGUE.values() for name, header in headers.items()}}
    for path, item in document.get("paths", {}).items():
        for operation in item.values():
            wanted = {"500"} if path in unshed else {"500", "503"}
            if operation.get("security"):
                wanted |= {"401", "403", "429"}
            if "requestBody" in operation:
                wanted |= {"413", "415", "422"}
            if operation.get("parameters"):
                wanted.add("422")
            responses = operation.setdefault("responses", {})
            for status in sorted(wanted - set(responses)):
                responses[status] = {"description": CATALOGUE[status][0],
                                     "content": ERROR_BODY}
            for status, response in responses.items():
                names = [*REQUEST_ID_RESPONSE, *CATALOGUE.get(status, ("", {}))[1]]
                response.setdefault("headers", {}).update(
                    {name: {"$ref": f"#/components/headers/{name}"} for name in names})
            parameters = operation.setdefault("parameters", [])
            if not any(p.get("name") == REQUEST_ID_HEADER for p in parameters):
                parameters.append(REQUEST_ID_PARAMETER)
    return document
