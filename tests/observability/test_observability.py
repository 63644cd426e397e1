"""Request logs, X-Request-ID and /metrics, observed through the real app and database."""

from __future__ import annotations

import json
import logging
import re

import httpx
import pytest
from fastapi import Request
from prometheus_client.parser import text_string_to_metric_families

from org_service.observability import json_formatter
from tests.helpers import create_org

ACCESS = "org_service.access"


def _access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == ACCESS]


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_one_json_line_per_request_with_route_template_and_tenant(
        client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    org = await create_org(client, "Logged Co")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=ACCESS):
        response = await client.get("/admin/me", headers={**org.auth, "X-Request-ID": "abc-123"})
    assert response.status_code == 200
    [record] = _access_records(caplog)
    line = json.loads(json_formatter().format(record))
    assert line["message"] == "request" and line["level"] == "INFO"
    assert line["method"] == "GET"
    assert line["route"] == "/admin/me"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] > 0
    assert line["organization_id"] == org.id
    assert line["request_id"] == "abc-123"


async def test_log_names_the_route_template_not_the_raw_path(
        app, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    # A path with a parameter: the template must appear, never the concrete value.
    @app.get("/_probe/{item_id}")
    async def probe(item_id: str) -> dict[str, str]:
        return {"item": item_id}

    try:
        with caplog.at_level(logging.INFO, logger=ACCESS):
            response = await client.get("/_probe/secret-value")
        assert response.status_code == 200
        [record] = _access_records(caplog)
        assert record.route == "/_probe/{item_id}"
        assert "secret-value" not in json_formatter().format(record)
    finally:
        app.router.routes[:] = [r for r in app.router.routes
                                if getattr(r, "path", None) != "/_probe/{item_id}"]


async def test_anonymous_and_unmatched_requests_are_logged_without_tenant(
        client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS):
        missing = await client.get("/no/such/path/12345")
        login = await client.post("/admin/login", json={"email": "x@example.com",
                                                        "password": "wrong-password"})
    assert missing.status_code == 404 and login.status_code == 401
    first, second = _access_records(caplog)
    assert (first.route, first.status, first.organization_id) == ("<unmatched>", 404, None)
    assert (second.route, second.status, second.organization_id) == ("/admin/login", 401, None)


async def test_request_id_is_echoed_when_sane(client: httpx.AsyncClient) -> None:
    sent = "0f8fad5b-d9cb-469f-a165-70867728950e"
    response = await client.get("/health", headers={"X-Request-ID": sent})
    assert response.headers["X-Request-ID"] == sent


async def test_request_id_is_generated_when_missing(client: httpx.AsyncClient) -> None:
    first = (await client.get("/health")).headers["X-Request-ID"]
    second = (await client.get("/health")).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", first) and first != second


@pytest.mark.parametrize("junk", ["a" * 129, "has space", "semi;colon", "<script>", "é-accent",
                                  "-leading-dash", ""])
async def test_junk_request_id_is_replaced(client: httpx.AsyncClient, junk: str) -> None:
    response = await client.get("/health", headers={"X-Request-ID": junk.encode()})
    echoed = response.headers["X-Request-ID"]
    assert echoed != junk and re.fullmatch(r"[0-9a-f]{32}", echoed)


async def test_request_id_is_on_error_answers_too(client: httpx.AsyncClient) -> None:
    responses = [
        await client.post("/org/get", json={"organization_name": ""}),  # 422
        await client.get("/admin/me"),  # 401
        await client.post("/org/get", json={"organization_name": "Nobody Here"}),  # 404
        await client.get("/missing"),  # 404 unmatched
        await client.put("/health"),  # 405
    ]
    assert [r.status_code for r in responses] == [422, 401, 404, 404, 405]
    for i, response in enumerate(responses):
        assert response.headers["X-Request-ID"]
        rid = f"err-{i}"
        again = await client.request(response.request.method, response.request.url.path,
                                     content=response.request.content,
                                     headers={"X-Request-ID": rid,
                                              "Content-Type": "application/json"})
        assert again.headers["X-Request-ID"] == rid


async def test_unhandled_exception_answers_500_with_request_id(app) -> None:
    @app.get("/_boom")
    async def boom() -> None:
        raise RuntimeError("kaboom")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            response = await http.get("/_boom", headers={"X-Request-ID": "boom-1"})
    finally:
        app.router.routes[:] = [r for r in app.router.routes
                                if getattr(r, "path", None) != "/_boom"]
    assert response.status_code == 500
    assert response.json() == {"error": "internal_error", "detail": "Internal server error"}
    assert response.headers["X-Request-ID"] == "boom-1"
    assert "kaboom" not in response.text


async def test_request_id_is_stored_on_request_state(app, client: httpx.AsyncClient) -> None:
    @app.get("/_rid")
    async def rid(request: Request) -> dict[str, str]:
        return {"rid": request.state.request_id}

    try:
        response = await client.get("/_rid", headers={"X-Request-ID": "state-42"})
    finally:
        app.router.routes[:] = [r for r in app.router.routes
                                if getattr(r, "path", None) != "/_rid"]
    assert response.json() == {"rid": "state-42"}


async def test_metrics_count_requests_by_route_and_status(client: httpx.AsyncClient) -> None:
    before = _samples((await client.get("/metrics")).text)
    org = await create_org(client, "Metered Co")
    for _ in range(3):
        assert (await client.post("/org/get", json={"organization_name": "Metered Co"})
                ).status_code == 200
    assert (await client.post("/org/get", json={"organization_name": "Ghost"})).status_code == 404
    assert (await client.get("/admin/me", headers=org.auth)).status_code == 200

    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = _samples(response.text)

    def delta(name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        return after.get(key, 0.0) - before.get(key, 0.0)

    get_ok = {"method": "POST", "route": "/org/get", "status": "200"}
    assert delta("http_requests_total", **get_ok) == 3
    assert delta("http_requests_total", method="POST", route="/org/get", status="404") == 1
    assert delta("http_request_duration_seconds_count", **get_ok) == 3
    assert delta("http_request_duration_seconds_bucket", **get_ok, le="+Inf") == 3
    assert delta("http_requests_total", method="GET", route="/admin/me", status="200") == 1
    assert delta("http_requests_total", method="POST", route="/org/create", status="201") == 1
    # Database latency from PyMongo command monitoring: the lookups ran `find` commands.
    assert delta("mongodb_command_duration_seconds_count", command="find", outcome="ok") >= 4
    # Its value is counted at most every METRICS_REFRESH_SECONDS (test_metrics_scrape.py).
    assert ("organizations", frozenset()) in after
    assert after[("process_resident_memory_bytes", frozenset())] > 0


async def test_metrics_is_public_and_unmatched_paths_share_one_label(
        client: httpx.AsyncClient) -> None:
    for i in range(5):
        await client.get(f"/scanner/probe-{i}")
    text = (await client.get("/metrics")).text
    assert "probe-" not in text
    assert 'route="<unmatched>"' in text


async def test_audit_entries_carry_the_request_id_the_response_echoed(
        client: httpx.AsyncClient) -> None:
    org = await create_org(client, "Traced Co")
    login = await client.post("/admin/login", headers={"X-Request-ID": "trace-login-7"},
                              json={"email": org.email, "password": org.password})
    junk = await client.post("/admin/login", headers={"X-Request-ID": "bad id!"},
                             json={"email": org.email, "password": org.password})
    assert login.headers["X-Request-ID"] == "trace-login-7"
    entries = (await client.get("/org/audit", headers=org.auth)).json()["entries"]
    ids = [e["request_id"] for e in entries if e["action"] == "admin.login"]
    # The generated replacement of a junk id is the same in the answer and the trail.
    assert "trace-login-7" in ids and junk.headers["X-Request-ID"] in ids
    assert "bad id!" not in ids
