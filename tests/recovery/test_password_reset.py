"""Password reset through the API: the link sets the password once and ends every
session; the request tells nothing about the account; dead, expired and suspended links
change nothing; requests are throttled. Interleavings are forced (a password hash held on
an event the test controls, a write made to fail), never left to timing."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId

from org_service.db import utcnow
from org_service.recovery import service as recovery_service
from tests.auth.test_throttle_cli import cleared, invoke
from tests.helpers import HeldHashes, calls_to, client_for, create_org, until
from tests.members.support import member_login, team
from tests.members.test_permission_matrix import snapshot
from tests.recovery.support import confirm, queued_token, request_reset

NEW = "a-new-password"
# Different for every request or every moment, so not part of "the same answer".
PER_REQUEST_HEADERS = {"x-request-id", "date"}


def shown(response: httpx.Response) -> tuple[int, bytes, list[tuple[str, str]]]:
    """What an answer shows the caller, but for what differs on every request."""
    headers = sorted((k, v) for k, v in response.headers.items()
                     if k not in PER_REQUEST_HEADERS)
    return response.status_code, response.content, headers


async def audit(master: Any, action: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await master["audit_log"].find(
        {"action": action}).sort("_id", 1).to_list(None)
    return found


async def test_the_link_sets_the_password_once_and_ends_every_session(
        client: httpx.AsyncClient, master: Any) -> None:
    people = await team(client)
    employee = people["employee"]
    # Two devices: each a session with an access and a refresh token.
    devices = [(await member_login(client, employee.email)).json() for _ in range(2)]

    asked = await request_reset(client, employee.email)
    assert asked.status_code == 202, asked.text
    token = await queued_token(master, employee.email)
    done = await confirm(client, token, NEW)

    assert done.status_code == 204 and done.content == b""
    for device in devices:
        bearer = {"Authorization": f"Bearer {device['access_token']}"}
        assert (await client.get("/me", headers=bearer)).status_code == 401
        refreshed = await client.post("/auth/refresh",
                                      json={"refresh_token": device["refresh_token"]})
        assert refreshed.status_code == 401, refreshed.text
    assert (await client.get("/me", headers=employee.auth)).status_code == 401
    assert all(session["ended_at"] is not None for session in
               await master["sessions"].find({"member_id": ObjectId(employee.id)}).to_list(None))
    assert (await member_login(client, employee.email)).status_code == 401
    assert (await member_login(client, employee.email, NEW)).status_code == 200

    before = await snapshot(master)
    again = await confirm(client, token, "yet-another-password")
    assert (again.status_code, again.json()["error"]) == (404, "not_found")
    assert await snapshot(master) == before
    assert (await member_login(client, employee.email, NEW)).status_code == 200

    [requested] = await audit(master, "password_reset.request")
    assert (requested["outcome"], requested["reason"]) == ("success", "queued")
    assert requested["admin_id"] == ObjectId(employee.id)
    completed = await audit(master, "password_reset.complete")
    assert [(e["outcome"], e["reason"]) for e in completed] == [
        ("success", None), ("failure", "not_found")]


async def test_an_unknown_email_gets_the_same_answer_after_the_same_work(
        client: httpx.AsyncClient, master: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    org = await create_org(client, "Acme")
    made = calls_to(monkeypatch, recovery_service, "new_token")
    loop_thread = threading.current_thread()

    known = await request_reset(client, org.email)
    unknown = await request_reset(client, "nobody@example.com")

    assert shown(known) == shown(unknown)
    assert known.status_code == 202
    # Both made a token, both in a worker thread (neither blocked the event loop).
    assert len(made) == 2 and all(thread is not loop_thread for thread in made.threads)
    assert await master["outbox"].count_documents({"to": "nobody@example.com"}) == 0
    assert await master["outbox"].count_documents({"to": org.email,
                                                   "kind": "password_reset"}) == 1
    reasons = [(e["target"], e["reason"]) for e in await audit(master, "password_reset.request")]
    assert reasons == [(org.email, "queued"), ("nobody@example.com", "unknown_email")]


async def test_the_unknown_email_makes_as_many_round_trips_as_a_known_one(
        client: httpx.AsyncClient, services: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    org = await create_org(client, "Acme")
    commands: list[str] = []
    for target, names in ((services.password_resets.resets, ("get", "replace")),
                          (services.outbox, ("enqueue",))):
        for name in names:
            real = getattr(target, name)

            def spy(*args: Any, _real: Any = real, _name: str = name) -> Any:
                commands.append(_name)
                return _real(*args)
            monkeypatch.setattr(target, name, spy)

    await request_reset(client, org.email)
    known, commands[:] = len(commands), []
    await request_reset(client, "nobody@example.com")

    assert known == len(commands) == 3


async def test_a_suspended_member_gets_no_mail_and_cannot_use_a_link(
        client: httpx.AsyncClient, master: Any) -> None:
    people = await team(client)
    owner, manager = people["owner"], people["manager"]
    await request_reset(client, manager.email)
    token = await queued_token(master, manager.email)
    assert (await client.post(f"/org/members/{manager.id}/suspend",
                              headers=owner.auth)).status_code == 200

    asked = await request_reset(client, manager.email)
    assert asked.status_code == 202
    assert await master["outbox"].count_documents(
        {"to": manager.email, "kind": "password_reset"}) == 1  # the first
    before = await snapshot(master)
    refused = await confirm(client, token)

    assert (refused.status_code, refused.json()["error"]) == (403, "member_suspended")
    assert await snapshot(master) == before
    reasons = [e["reason"] for e in await audit(master, "password_reset.request")]
    assert reasons == ["queued", "inactive"]
    [denied] = await audit(master, "password_reset.complete")
    assert (denied["outcome"], denied["reason"]) == ("denied", "member_suspended")


async def test_an_expired_link_is_gone_and_changes_nothing(
        client: httpx.AsyncClient, master: Any) -> None:
    org = await create_org(client, "Acme")
    await request_reset(client, org.email)
    token = await queued_token(master, org.email)
    await master["password_resets"].update_many(
        {}, {"$set": {"expires_at": utcnow() - timedelta(seconds=1)}})
    before = await snapshot(master)

    refused = await confirm(client, token)

    assert (refused.status_code, refused.json()["error"]) == (410, "gone")
    assert await snapshot(master) == before
    assert (await client.get("/me", headers=org.auth)).status_code == 200
    assert (await member_login(client, org.email)).status_code == 200


async def test_a_new_request_kills_the_previous_link(
        client: httpx.AsyncClient, master: Any) -> None:
    org = await create_org(client, "Acme")
    await request_reset(client, org.email)
    first = await queued_token(master, org.email)
    await request_reset(client, org.email)
    second = await queued_token(master, org.email)

    assert first != second
    assert (await confirm(client, first)).status_code == 404
    assert (await confirm(client, second, NEW)).status_code == 204
    assert (await member_login(client, org.email, NEW)).status_code == 200


async def test_two_uses_of_one_link_at_once_set_one_password(
        client: httpx.AsyncClient, master: Any, services: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    org = await create_org(client, "Acme")
    await request_reset(client, org.email)
    token = await queued_token(master, org.email)
    held = HeldHashes(services.hasher.hash)
    monkeypatch.setattr(services.hasher, "hash", held)
    held.armed = True

    racing = [asyncio.create_task(confirm(client, token, password))
              for password in ("first-password", "second-password")]
    # Both are past every check, their hashes made, before either writes.
    await until(lambda: held.done == 2)
    held.release.set()
    answers = [response.status_code for response in await asyncio.gather(*racing)]

    assert sorted(answers) == [204, 404]
    winner = ("first-password", "second-password")[answers.index(204)]
    loser = ("first-password", "second-password")[answers.index(404)]
    monkeypatch.undo()
    assert (await member_login(client, org.email, winner)).status_code == 200
    assert (await member_login(client, org.email, loser)).status_code == 401


async def test_a_link_whose_use_stopped_after_the_password_write_is_dead(
        client: httpx.AsyncClient, master: Any, services: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The crash the order is chosen for: the password is written, `used_at` is not."""
    org = await create_org(client, "Acme")
    await request_reset(client, org.email)
    token = await queued_token(master, org.email)

    async def crash(*args: Any) -> None:
        raise RuntimeError("the process died here")

    monkeypatch.setattr(services.password_resets.resets, "mark_used", crash)
    with pytest.raises(RuntimeError):
        await confirm(client, token, NEW)
    monkeypatch.undo()

    [reset] = await master["password_resets"].find({}).to_list(None)
    assert reset["used_at"] is None  # the crash left it unmarked...
    again = await confirm(client, token, "an-attackers-password")
    assert again.status_code == 404  # ...and still it cannot be used again
    assert (await member_login(client, org.email, NEW)).status_code == 200


async def test_requests_are_throttled_per_email_and_per_address(app: Any) -> None:
    async with client_for(app, "198.51.100.1") as here, \
            client_for(app, "198.51.100.2") as there:
        org = await create_org(here, "Acme")
        for _ in range(5):
            assert (await request_reset(here, org.email)).status_code == 202
        # The email's limit holds from anywhere: its inbox cannot be flooded.
        refused = await request_reset(there, org.email)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
        assert (await request_reset(here, "other@example.com")).status_code == 202

        for n in range(14):  # 20 from this address, counted whatever they found
            assert (await request_reset(here, f"n{n}@example.com")).status_code == 202
        assert (await request_reset(here, "one.more@example.com")).status_code == 429
        assert (await request_reset(there, "one.more@example.com")).status_code == 202

        by_email = await invoke("throttle", "clear", "--email", org.email)
        # Its reset counter, and its login counter (create_org logged in).
        assert cleared(by_email) == 2
        assert (await request_reset(there, org.email)).status_code == 202
        by_address = await invoke("throttle", "clear", "--address", "198.51.100.1")
        # Its reset counter, and its login and create counters (create_org's; the good
        # login cleared its pair counter already).
        assert cleared(by_address) == 3
        assert (await request_reset(here, "one.more@example.com")).status_code == 202


async def test_bad_input_is_refused_and_writes_nothing(
        client: httpx.AsyncClient, master: Any) -> None:
    await create_org(client, "Acme")
    before = await snapshot(master)
    for path, body in (("/auth/password-reset", {"email": "not-an-email"}),
                       ("/auth/password-reset", {"email": "a@example.com", "role": "x"}),
                       ("/auth/password-reset/confirm", {"token": "short", "password": NEW}),
                       ("/auth/password-reset/confirm",
                        {"token": "A" * 43, "password": "short"})):
        refused = await client.post(path, json=body)
        assert refused.status_code == 422, (path, body, refused.text)
    assert await snapshot(master) == before
