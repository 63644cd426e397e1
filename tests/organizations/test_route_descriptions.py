"""What the OpenAPI descriptions promise about waits, kept in step with the code."""

from __future__ import annotations

from typing import Any

import pytest

from org_service.config import OperatorSettings
from org_service.main import create_app
from org_service.organizations.lifecycle import FENCE_MARGIN


@pytest.mark.parametrize(("method", "path"), [
    ("post", "/org/create"), ("put", "/org/update"), ("delete", "/org/delete")])
def test_routes_that_may_wait_for_a_rename_to_settle_say_why_and_how_long(
        settings: Any, method: str, path: str) -> None:
    description = create_app(settings).openapi()["paths"][path][method]["description"]
    default = OperatorSettings.model_fields["TENANT_REQUEST_TIMEOUT_MS"].default
    margin_ms = FENCE_MARGIN.total_seconds() * 1000
    words = " ".join(description.split())  # docstring line breaks aside
    assert f"`TENANT_REQUEST_TIMEOUT_MS` + {margin_ms:g} ms" in words
    assert f"({(default + margin_ms) / 1000:g} s by default)" in words
    assert "may still be writing" in words
