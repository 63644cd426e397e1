"""Schemathesis over the app's own OpenAPI document, in process (ASGI, no network): whatever
it sends, the app never answers 5xx and every answer matches what the document promises."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from org_service.main import create_app
from tests.helpers import create_org

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def api_schema(settings: Any) -> Iterator[Any]:
    # An app instance of its own: schemathesis runs it (and its lifespan, hence its own
    # MongoDB client) on its own event loop, against the same database.
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(settings))
    yield schema
    asgi.shutdown_lifespans()


def operations() -> list[tuple[str, str, GenerationMode]]:
    """Every operation with valid input, and those that take input with invalid input too."""
    spec = create_app().openapi()
    cases = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            cases.append((method.upper(), path, GenerationMode.POSITIVE))
            if operation.get("parameters") or operation.get("requestBody"):
                cases.append((method.upper(), path, GenerationMode.NEGATIVE))
    return sorted(cases)


@pytest.fixture
async def auth(client: httpx.AsyncClient) -> dict[str, str]:
    """A valid token, so the protected operations are exercised past authentication."""
    return (await create_org(client, "Fuzz Target")).auth


@pytest.mark.parametrize(("method", "path", "mode"), operations())
def test_no_server_errors_and_documented_responses(api_schema: Any, auth: dict[str, str],
                                                   method: str, path: str,
                                                   mode: GenerationMode) -> None:
    # Positive cases fit the document, negative ones break it (wrong types, missing
    # fields...): both must get a documented answer, negative ones mostly a 422.
    @given(case=api_schema[path][method].as_strategy(mode))
    @hypothesis_settings(
        max_examples=40, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def fuzz(case: Any) -> None:
        case.call_and_validate(headers=auth, checks=CHECKS)

    fuzz()
