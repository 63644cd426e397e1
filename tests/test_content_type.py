"""A JSON-body route answers a body sent as anything but JSON with a 415 naming
`Content-Type: application/json`, and writes nothing; JSON with parameters or as
application/*+json is JSON."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from org_service.main import create_app
from tests.helpers import create_org

CREATE = {"organization_name": "Acme Corp", "email": "admin@acme.com", "password": "secure123"}
RECORD = {"name": "Ada Lovelace", "department": "engineering"}

# How each wrong way of sending a body goes out: (request keyword arguments, the media type
# the answer should name as sent, None when no Content-Type was sent).
WRONG = {
    "no content type": (lambda body: {"content": json.dumps(body).encode()}, None),
    "empty content type": (lambda body: {"content": json.dumps(body).encode(),
                                         "headers": {"Content-Type": ""}}, None),
    "text/plain": (lambda body: {"content": json.dumps(body).encode(),
                                 "headers": {"Content-Type": "text/plain"}}, "text/plain"),
    "form": (lambda body: {"data": {k: str(v) for k, v in body.items()}},
             "application/x-www-form-urlencoded"),
    "multipart": (lambda body: {"data": {k: str(v) for k, v in body.items()},
                                "files": {"file": ("body.json", json.dumps(body).encode(),
                                                   "application/json")}},
                  "multipart/form-data"),
}


def _assert_415(response: httpx.Response, sent: str | None) -> None:
    assert response.status_code == 415, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] == "unsupported_media_type"
    assert "Content-Type: application/json" in body["detail"]
    assert (sent or "no Content-Type") in body["detail"]


@pytest.mark.parametrize("way", WRONG)
async def test_create_not_sent_as_json_is_415_and_creates_nothing(
        client: httpx.AsyncClient, master: Any, way: str) -> None:
    arguments, sent = WRONG[way]
    _assert_415(await client.post("/org/create", **arguments(CREATE)), sent)
    assert await master["organizations"].count_documents({}) == 0
    assert await master["admins"].count_documents({}) == 0
    assert not [n for n in await master.list_collection_names() if n.startswith("org_")]


@pytest.mark.parametrize("way", WRONG)
async def test_update_not_sent_as_json_is_415_and_changes_nothing(
        client: httpx.AsyncClient, master: Any, way: str) -> None:
    org = await create_org(client, "Acme Corp")
    arguments, sent = WRONG[way]
    request = arguments({"old_organization_name": "Acme Corp",
                         "new_organization_name": "Acme Two"})
    request["headers"] = {**request.get("headers", {}), **org.auth}
    _assert_415(await client.put("/org/update", **request), sent)
    assert [o["organization_name"] async for o in master["organizations"].find({})] == ["Acme Corp"]
    assert await master.list_collection_names(filter={"name": {"$regex": "^org_"}}) == [
        org.collection_name]


@pytest.mark.parametrize("way", WRONG)
async def test_record_write_not_sent_as_json_is_415_and_stores_nothing(
        client: httpx.AsyncClient, master: Any, way: str) -> None:
    org = await create_org(client, "Acme Corp")
    arguments, sent = WRONG[way]
    request = arguments(RECORD)
    request["headers"] = {**request.get("headers", {}), **org.auth}
    _assert_415(await client.post("/org/records/people", **request), sent)
    assert await master[org.collection_name].count_documents({}) == 0


async def test_the_415_comes_before_authentication(client: httpx.AsyncClient) -> None:
    # Like malformed JSON, a body that cannot be read is refused before the token is looked
    # at: the caller learns the mistake they can fix first.
    _assert_415(await client.post("/org/records/people", content=b"{}",
                                  headers={"Content-Type": "text/plain"}), "text/plain")


@pytest.mark.parametrize("content_type", [
    "application/json; charset=utf-8", "APPLICATION/JSON", "application/vnd.acme+json"])
async def test_json_with_parameters_or_a_json_suffix_is_json(
        client: httpx.AsyncClient, content_type: str) -> None:
    created = await client.post("/org/create", content=json.dumps(CREATE).encode(),
                                headers={"Content-Type": content_type})
    assert created.status_code == 201, created.text


async def test_no_body_and_no_content_type_is_still_the_422_naming_the_body(
        client: httpx.AsyncClient, master: Any) -> None:
    response = await client.post("/org/create")
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == ["body"]
    assert await master["organizations"].count_documents({}) == 0


def test_every_route_with_a_json_body_documents_the_415_and_no_other_does() -> None:
    spec = create_app().openapi()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            documented = "415" in operation["responses"]
            assert documented == ("requestBody" in operation), f"{method.upper()} {path}"
