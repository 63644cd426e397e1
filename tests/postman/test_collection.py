"""The Postman collection keeps up with the API: every OpenAPI route is in it, in the
folders QA expects, and every request checks what it gets back."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
COLLECTION = json.loads((ROOT / "postman/org_service.postman_collection.json").read_text())
ENVIRONMENT = json.loads((ROOT / "postman/local.postman_environment.json").read_text())
REQUIRED_FOLDERS = {"Organizations", "Admin auth", "Tenant records", "Audit", "Health"}


def _requests(items: list[dict[str, Any]], folder: str = "") -> Iterator[tuple[str, dict]]:
    for item in items:
        if "item" in item:
            yield from _requests(item["item"], item["name"])
        else:
            yield folder, item


def _script(item: dict[str, Any], listen: str) -> str:
    return "\n".join(line for event in item.get("event", []) if event["listen"] == listen
                     for line in event["script"]["exec"])


def _path(item: dict[str, Any]) -> str:
    raw = item["request"]["url"]["raw"]
    assert raw.startswith("{{base_url}}/"), raw
    return raw.removeprefix("{{base_url}}").split("?")[0]


def _covers(openapi_path: str, collection_path: str) -> bool:
    # A {param} of the API matches any one segment, a literal or a {{variable}}.
    pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(openapi_path))
    return re.fullmatch(pattern, collection_path) is not None


def test_every_openapi_route_is_in_the_collection(app) -> None:
    in_collection = {(item["request"]["method"], _path(item))
                     for _, item in _requests(COLLECTION["item"])}
    missing = [f"{method.upper()} {path}"
               for path, operations in app.openapi()["paths"].items()
               for method in operations
               if not any(m == method.upper() and _covers(path, p) for m, p in in_collection)]
    assert not missing, f"routes missing from the Postman collection: {missing}"


def test_route_matching_tells_templates_apart() -> None:
    assert _covers("/org/records/{kind}/{id}", "/org/records/{{kind}}/{{record_id}}")
    assert _covers("/org/records/{kind}/{id}", "/org/records/notes/abc")
    assert not _covers("/org/records/{kind}/{id}", "/org/records/{{kind}}")
    assert not _covers("/org/get", "/org/getter")


def test_collection_is_v21_in_the_expected_folders() -> None:
    assert COLLECTION["info"]["schema"].endswith("/collection/v2.1.0/collection.json")
    assert {item["name"] for item in COLLECTION["item"] if "item" in item} >= REQUIRED_FOLDERS
    assert all(folder for folder, _ in _requests(COLLECTION["item"]))


def test_every_request_checks_its_status() -> None:
    for folder, item in _requests(COLLECTION["item"]):
        assert re.search(r"to\.have\.status\(\d{3}\)", _script(item, "test")), (
            folder, item["name"])


def test_negative_cases_are_covered() -> None:
    statuses = {int(code) for _, item in _requests(COLLECTION["item"])
                for code in re.findall(r"to\.have\.status\((\d{3})\)", _script(item, "test"))}
    assert {401, 403, 404, 409, 422} <= statuses


def test_login_saves_the_token_into_the_environment() -> None:
    logins = [item for _, item in _requests(COLLECTION["item"])
              if _path(item) == "/admin/login"
              and 'pm.environment.set("access_token"' in _script(item, "test")]
    assert logins
    protected = [item for _, item in _requests(COLLECTION["item"])
                 if any(h["key"] == "Authorization" and h["value"] == "Bearer {{access_token}}"
                        for h in item["request"]["header"])]
    assert protected
    keys = {value["key"] for value in ENVIRONMENT["values"]}
    assert {"base_url", "access_token"} <= keys


def test_names_are_fresh_on_every_run() -> None:
    # Reruns against a persistent database must not collide with the previous run's data.
    [create_a] = [item for _, item in _requests(COLLECTION["item"])
                  if item["name"] == "Create organization A"]
    pre = _script(create_a, "prerequest")
    assert "Date.now()" in pre and 'pm.collectionVariables.set("run_id"' in pre
    body = create_a["request"]["body"]["raw"]
    assert "{{org_a_name}}" in body and "{{org_a_email}}" in body
