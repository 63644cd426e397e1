"""Every bad request gets a 4xx JSON body saying what is wrong, and writes nothing."""

from __future__ import annotations

import httpx
import pytest

VALID = {"organization_name": "Acme Corp", "email": "admin@acme.com", "password": "secure123"}


async def _assert_rejected(response: httpx.Response, master, status: int = 422) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] and body["detail"]
    assert "Traceback" not in response.text
    assert await master["organizations"].count_documents({}) == 0
    assert await master["members"].count_documents({}) == 0
    assert not [n for n in await master.list_collection_names() if n.startswith("org_")]
    return body


@pytest.mark.parametrize("field", ["organization_name", "email", "password"])
async def test_missing_field_is_named(client: httpx.AsyncClient, master, field: str) -> None:
    body = {k: v for k, v in VALID.items() if k != field}
    error = await _assert_rejected(await client.post("/org/create", json=body), master)
    assert error["errors"][0]["loc"] == ["body", field]
    assert field in error["detail"]


@pytest.mark.parametrize("field", ["organization_name", "email", "password"])
@pytest.mark.parametrize("value", [{"$ne": None}, {"$gt": ""}, ["a", "b"], 12345678, None, True])
async def test_operator_objects_and_wrong_types_are_refused(
        client: httpx.AsyncClient, master, field: str, value: object) -> None:
    error = await _assert_rejected(
        await client.post("/org/create", json={**VALID, field: value}), master)
    assert ["body", field] in [e["loc"][:2] for e in error["errors"]]


@pytest.mark.parametrize("path", ["/org/get", "/admin/login"])
async def test_operator_object_in_lookup_fields(client: httpx.AsyncClient, master,
                                                path: str) -> None:
    body = ({"organization_name": {"$ne": None}} if path == "/org/get"
            else {"email": {"$ne": None}, "password": {"$ne": None}})
    await _assert_rejected(await client.post(path, json=body), master)


@pytest.mark.parametrize("raw", [
    b'{"organization_name": "Acme", ',
    b"not json at all",
    b'{"organization_name": "Acme Corp", "email": "a@b.co", "password": "secure123",}',
])
async def test_invalid_json(client: httpx.AsyncClient, master, raw: bytes) -> None:
    error = await _assert_rejected(await client.post(
        "/org/create", content=raw, headers={"Content-Type": "application/json"}), master)
    assert error["errors"][0]["type"] == "json_invalid"
    assert error["errors"][0]["msg"].startswith("Invalid JSON")


async def test_invalid_utf8(client: httpx.AsyncClient, master) -> None:
    raw = b'{"organization_name": "Acme \xff\xfe Corp", "email": "a@b.co", "password": "secure123"}'
    error = await _assert_rejected(await client.post(
        "/org/create", content=raw, headers={"Content-Type": "application/json"}), master)
    assert "UTF-8" in error["errors"][0]["msg"]


@pytest.mark.parametrize("literal", ["1e999", "-1e999", "NaN", "Infinity", "-Infinity",
                                     "1" + "0" * 30])
async def test_non_finite_and_huge_numbers(client: httpx.AsyncClient, master,
                                           literal: str) -> None:
    raw = b'{"organization_name": ' + literal.encode() + b', "email": "a@b.co"}'
    error = await _assert_rejected(await client.post(
        "/org/create", content=raw, headers={"Content-Type": "application/json"}), master)
    assert error["errors"][0]["type"] == "json_invalid"


async def test_absurdly_nested_json_is_422(client: httpx.AsyncClient, master) -> None:
    raw = b"[" * 100_000 + b"]" * 100_000
    error = await _assert_rejected(await client.post(
        "/org/create", content=raw, headers={"Content-Type": "application/json"}), master)
    assert "nested too deeply" in error["errors"][0]["msg"]


async def test_body_over_one_mebibyte_is_413(client: httpx.AsyncClient, master) -> None:
    raw = b'{"organization_name": "' + b"a" * (1024 * 1024 + 10) + b'"}'
    await _assert_rejected(await client.post(
        "/org/create", content=raw, headers={"Content-Type": "application/json"}), master, 413)


async def test_body_over_limit_without_content_length_is_413(client: httpx.AsyncClient,
                                                             master) -> None:
    async def chunks():
        yield b'{"organization_name": "'
        for _ in range(20):
            yield b"a" * 65536
        yield b'"}'

    await _assert_rejected(await client.post(
        "/org/create", content=chunks(), headers={"Content-Type": "application/json"}),
        master, 413)


@pytest.mark.parametrize("password", ["short", "1234567", "x" * 129])
async def test_password_length_is_8_to_128(client: httpx.AsyncClient, master,
                                           password: str) -> None:
    error = await _assert_rejected(
        await client.post("/org/create", json={**VALID, "password": password}), master)
    assert error["errors"][0]["loc"] == ["body", "password"]


async def test_password_of_128_characters_is_accepted_and_counts_in_full(
        client: httpx.AsyncClient) -> None:
    password = "é" * 128  # 256 UTF-8 bytes: far past bcrypt's 72
    created = await client.post("/org/create", json={**VALID, "password": password})
    assert created.status_code == 201
    ok = await client.post("/admin/login", json={"email": VALID["email"], "password": password})
    assert ok.status_code == 200
    almost = "é" * 127 + "e"
    wrong = await client.post("/admin/login", json={"email": VALID["email"], "password": almost})
    assert wrong.status_code == 401


@pytest.mark.parametrize("email", ["not-an-email", "a@", "@b.com", "a b@c.com", ""])
async def test_bad_email(client: httpx.AsyncClient, master, email: str) -> None:
    await _assert_rejected(await client.post("/org/create", json={**VALID, "email": email}),
                           master)


@pytest.mark.parametrize("name", ["", " ", "A", "  B  ", "x" * 101, "-Acme", "Acme\x00Corp",
                                  "Acme\nCorp", "Acme/Corp", "Acme$Corp", "Acme{Corp}", "!!",
                                  "..."])
async def test_bad_organization_names(client: httpx.AsyncClient, master, name: str) -> None:
    error = await _assert_rejected(
        await client.post("/org/create", json={**VALID, "organization_name": name}), master)
    assert error["errors"][0]["loc"] == ["body", "organization_name"]


async def test_array_body_and_empty_body(client: httpx.AsyncClient, master) -> None:
    await _assert_rejected(await client.post("/org/create", json=[VALID]), master)
    await _assert_rejected(await client.post(
        "/org/create", content=b"", headers={"Content-Type": "application/json"}), master)


async def test_unknown_route_and_method_are_json(client: httpx.AsyncClient) -> None:
    missing = await client.get("/nope")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong_method = await client.get("/org/create")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"] == "method_not_allowed"
