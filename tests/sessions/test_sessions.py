"""Sessions: a login starts one, a refresh rotates its refresh token, reuse ends it, and
everyone who should can end it, with its access tokens stopping at once."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from bson import ObjectId

from org_service.db import utcnow
from org_service.sessions.repository import SessionRepository
from tests.helpers import DEFAULT_PASSWORD, Org, app_with, client_for, create_org
from tests.members.support import add, member_login, team


async def log_in(client: httpx.AsyncClient, email: str, **headers: str) -> dict[str, Any]:
    response = await client.post("/auth/login", headers=headers,
                                 json={"email": email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/auth/refresh", json={"refresh_token": token})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def session_of(access_token: str) -> str:
    sid: str = jwt.decode(access_token, options={"verify_signature": False})["sid"]
    return sid


async def works(client: httpx.AsyncClient, access_token: str) -> bool:
    response = await client.get("/me", headers=bearer(access_token))
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


async def ended(response: httpx.Response) -> bool:
    return response.status_code == 401 and response.json()["error"] == "session_ended"


@pytest.fixture
async def acme(client: httpx.AsyncClient) -> Org:
    return await create_org(client, "Acme")


async def test_a_login_starts_a_session_and_a_refresh_rotates_its_tokens(
        client: httpx.AsyncClient, acme: Org) -> None:
    login = await log_in(client, acme.email)
    assert login["expires_in"] == 15 * 60 and login["token_type"] == "bearer"

    renewed = await refresh(client, login["refresh_token"])

    assert renewed.status_code == 200, renewed.text
    pair = renewed.json()
    assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert pair["refresh_token"] != login["refresh_token"]
    assert session_of(pair["access_token"]) == session_of(login["access_token"])
    assert await works(client, pair["access_token"])
    # The next refresh takes the new token.
    assert (await refresh(client, pair["refresh_token"])).status_code == 200


async def test_a_spent_refresh_token_presented_again_ends_the_whole_session(
        settings: Any, acme: Org, master: Any) -> None:
    async with app_with(settings, REFRESH_REUSE_GRACE_SECONDS=0) as app, \
            client_for(app) as client:
        login = await log_in(client, acme.email)
        first = (await refresh(client, login["refresh_token"])).json()
        second = (await refresh(client, first["refresh_token"])).json()

        replayed = await refresh(client, login["refresh_token"])  # the thief, or the victim

        assert await ended(replayed)
        # Nobody holding the family gets on: not the latest refresh token, nor any access
        # token of the session.
        assert await ended(await refresh(client, second["refresh_token"]))
        assert not await works(client, second["access_token"])
        assert not await works(client, login["access_token"])
        entry = await master["audit_log"].find_one({"action": "session.refresh_reuse"})
        assert entry["target"] == session_of(login["access_token"])
        assert entry["outcome"] == "denied"
        # Another session of the same member goes on.
        other = await log_in(client, acme.email)
        assert await works(client, other["access_token"])


async def test_the_grace_window_answers_the_same_pair_only_to_the_token_spent_last(
        client: httpx.AsyncClient, acme: Org) -> None:
    login = await log_in(client, acme.email)
    first = (await refresh(client, login["refresh_token"])).json()

    again = await refresh(client, login["refresh_token"])  # a second tab, a moment later

    assert again.status_code == 200, again.text
    assert again.json() == first  # the very same pair, not a second one
    second = (await refresh(client, first["refresh_token"])).json()
    # `login`'s token is now two rotations back: no grace for it, the session ends.
    assert await ended(await refresh(client, login["refresh_token"]))
    assert not await works(client, second["access_token"])


async def test_concurrent_refreshes_of_one_token_give_one_new_pair(
        client: httpx.AsyncClient, acme: Org, master: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    login = await log_in(client, acme.email)
    # Both refreshes have read the session before either rotates it.
    both_read = asyncio.Barrier(2)
    rotate = SessionRepository.rotate

    async def rotate_together(self: SessionRepository, *args: Any) -> Any:
        await asyncio.wait_for(both_read.wait(), 10)
        return await rotate(self, *args)

    monkeypatch.setattr(SessionRepository, "rotate", rotate_together)

    answers = await asyncio.gather(refresh(client, login["refresh_token"]),
                                   refresh(client, login["refresh_token"]))

    assert [answer.status_code for answer in answers] == [200, 200]
    assert answers[0].json() == answers[1].json()
    session = await master["sessions"].find_one(
        {"_id": ObjectId(session_of(login["access_token"]))})
    assert session["generation"] == 1 and session["ended_at"] is None
    assert await works(client, answers[0].json()["access_token"])


@pytest.mark.parametrize("deadline", ["expires_at", "idle_expires_at"])
async def test_a_session_past_its_lifetime_or_idle_too_long_cannot_be_refreshed(
        client: httpx.AsyncClient, acme: Org, master: Any, deadline: str) -> None:
    login = await log_in(client, acme.email)
    await master["sessions"].update_one(
        {"_id": ObjectId(session_of(login["access_token"]))},
        {"$set": {deadline: utcnow() - timedelta(seconds=1)}})

    assert await ended(await refresh(client, login["refresh_token"]))


async def test_no_access_token_outlives_its_session(
        client: httpx.AsyncClient, acme: Org, master: Any) -> None:
    login = await log_in(client, acme.email)
    end = utcnow() + timedelta(minutes=2)  # sooner than an access token's 15 minutes
    await master["sessions"].update_one(
        {"_id": ObjectId(session_of(login["access_token"]))}, {"$set": {"expires_at": end}})

    renewed = (await refresh(client, login["refresh_token"])).json()

    claims = jwt.decode(renewed["access_token"], options={"verify_signature": False})
    assert claims["exp"] == int(end.timestamp())
    assert renewed["expires_in"] <= 120


async def test_a_session_lasts_as_long_as_the_settings_say(
        client: httpx.AsyncClient, acme: Org, master: Any) -> None:
    login = await log_in(client, acme.email)
    session = await master["sessions"].find_one(
        {"_id": ObjectId(session_of(login["access_token"]))})
    started = session["created_at"]
    assert session["expires_at"] - started == timedelta(days=30)
    assert session["idle_expires_at"] - started == timedelta(days=7)
    # Only the hash of the refresh token is kept.
    stored = await master["refresh_tokens"].find({"session_id": session["_id"]}).to_list(None)
    assert [doc["_id"] for doc in stored] != [login["refresh_token"]]
    assert len(stored) == 1 and len(stored[0]["_id"]) == 64


async def test_logout_ends_this_session_only(client: httpx.AsyncClient, acme: Org,
                                             master: Any) -> None:
    here = await log_in(client, acme.email)
    there = await log_in(client, acme.email)

    response = await client.post("/auth/logout", headers=bearer(here["access_token"]))

    assert response.status_code == 204
    assert not await works(client, here["access_token"])
    assert await ended(await refresh(client, here["refresh_token"]))
    assert await works(client, there["access_token"])
    assert await master["audit_log"].count_documents({"action": "session.logout"}) == 1


async def test_my_sessions_are_listed_and_one_can_be_ended(
        client: httpx.AsyncClient, acme: Org) -> None:
    laptop = await log_in(client, acme.email, **{"User-Agent": "Laptop/1.0"})
    phone = await log_in(client, acme.email, **{"User-Agent": "Phone/2.0"})
    stranger = await create_org(client, "Globex")

    listed = await client.get("/me/sessions", headers=bearer(laptop["access_token"]))

    assert listed.status_code == 200
    sessions = {s["id"]: s for s in listed.json()["sessions"]}
    assert session_of(laptop["access_token"]) in sessions
    assert session_of(phone["access_token"]) in sessions
    assert session_of(stranger.token) not in sessions
    mine = sessions[session_of(laptop["access_token"])]
    assert mine["current"] and mine["user_agent"] == "Laptop/1.0"
    assert mine["client_address"] == "203.0.113.7"
    assert not sessions[session_of(phone["access_token"])]["current"]

    # Someone else's session is not mine to end: 404, and it goes on.
    foreign = await client.delete(f"/me/sessions/{session_of(stranger.token)}",
                                  headers=bearer(laptop["access_token"]))
    assert foreign.status_code == 404
    assert await works(client, stranger.token)

    gone = await client.delete(f"/me/sessions/{session_of(phone['access_token'])}",
                               headers=bearer(laptop["access_token"]))
    assert gone.status_code == 204
    assert not await works(client, phone["access_token"])
    assert await ended(await refresh(client, phone["refresh_token"]))
    after = await client.get("/me/sessions", headers=bearer(laptop["access_token"]))
    assert session_of(phone["access_token"]) not in {s["id"] for s in after.json()["sessions"]}


async def test_an_admin_ends_every_session_of_a_member_but_not_of_an_owner(
        client: httpx.AsyncClient, master: Any) -> None:
    people = await team(client)
    employee = people["employee"]
    second = await log_in(client, employee.email)

    response = await client.delete(f"/org/members/{employee.id}/sessions",
                                   headers=people["admin"].auth)

    assert response.status_code == 200, response.text
    assert response.json()["ended"] == 2
    assert not await works(client, employee.token)
    assert await ended(await refresh(client, second["refresh_token"]))
    # They log in again as usual.
    assert (await member_login(client, employee.email)).status_code == 200
    owner = await client.delete(f"/org/members/{people['owner'].id}/sessions",
                                headers=people["admin"].auth)
    assert owner.status_code == 403
    assert await works(client, people["owner"].token)
    entry = await master["audit_log"].find_one({"action": "session.revoke"})
    assert entry["target"] == f"{employee.id} all (2)"


async def test_another_organizations_member_sessions_are_not_found(
        client: httpx.AsyncClient) -> None:
    acme, globex = await team(client, "Acme"), await team(client, "Globex")

    response = await client.delete(f"/org/members/{globex['employee'].id}/sessions",
                                   headers=acme["owner"].auth)

    assert response.status_code == 404
    assert await works(client, globex["employee"].token)


@pytest.mark.parametrize("change", ["suspend", "remove", "password", "delete"])
async def test_suspension_removal_password_change_and_deletion_end_every_session(
        client: httpx.AsyncClient, master: Any, change: str) -> None:
    people = await team(client)
    employee = people["employee"]
    session = await log_in(client, employee.email)
    owner = people["owner"]

    if change == "suspend":
        done = await client.post(f"/org/members/{employee.id}/suspend", headers=owner.auth)
        await client.post(f"/org/members/{employee.id}/reactivate", headers=owner.auth)
    elif change == "remove":
        done = await client.delete(f"/org/members/{employee.id}", headers=owner.auth)
    elif change == "password":
        done = await client.patch("/me", headers=bearer(session["access_token"]), json={
            "password": "a-new-password", "current_password": DEFAULT_PASSWORD})
    else:
        done = await client.request("DELETE", "/org/delete", headers=owner.auth,
                                    json={"organization_name": "Acme"})
    assert done.status_code < 300, done.text

    # Reactivated or not, nothing from before goes on.
    assert await ended(await refresh(client, session["refresh_token"]))
    assert not await works(client, session["access_token"])
    assert await master["sessions"].count_documents(
        {"member_id": ObjectId(employee.id), "ended_at": None}) == 0


async def test_a_member_keeps_at_most_the_configured_sessions(
        settings: Any, acme: Org) -> None:
    async with app_with(settings, SESSIONS_PER_MEMBER=2) as app, client_for(app) as client:
        oldest = await log_in(client, acme.email)
        kept = [await log_in(client, acme.email), await log_in(client, acme.email)]

        assert not await works(client, oldest["access_token"])
        assert all([await works(client, login["access_token"]) for login in kept])


@pytest.mark.parametrize("body", [
    {}, {"refresh_token": 42}, {"refresh_token": None}, {"refresh_token": "x" * 513},
    {"refresh_token": "x", "extra": 1}, [], "token",
], ids=["missing", "number", "null", "too-long", "extra-field", "list", "string"])
async def test_a_malformed_refresh_is_refused_naming_the_problem_and_writes_nothing(
        client: httpx.AsyncClient, master: Any, body: Any) -> None:
    before = await master["sessions"].count_documents({})

    response = await client.post("/auth/refresh", json=body)

    assert response.status_code == 422, response.text
    assert response.json()["error"] == "validation_error"
    assert await master["sessions"].count_documents({}) == before


async def test_an_unknown_refresh_token_is_refused(client: httpx.AsyncClient) -> None:
    response = await refresh(client, "not-a-token-we-ever-gave")
    assert await ended(response)
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_every_member_logs_in_and_refreshes_at_auth_login(
        client: httpx.AsyncClient, acme: Org) -> None:
    manager = await add(client, acme, "manager", "Mo Manager")
    session = await log_in(client, manager.email)

    renewed = await refresh(client, session["refresh_token"])

    assert renewed.status_code == 200
    me = await client.get("/me", headers=bearer(renewed.json()["access_token"]))
    assert me.json()["role"] == "manager"


async def test_a_logout_cut_short_after_noting_the_session_on_the_member_still_ends_it(
        client: httpx.AsyncClient, acme: Org, master: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    login = await log_in(client, acme.email)
    sid = ObjectId(session_of(login["access_token"]))
    never, real_end, calls = asyncio.Event(), SessionRepository.end, []

    async def stuck(self: SessionRepository, *args: Any, **kwargs: Any) -> int:
        calls.append(args)
        if len(calls) == 1:  # the logout's: its process dies before marking the session
            await never.wait()
        return await real_end(self, *args, **kwargs)

    monkeypatch.setattr(SessionRepository, "end", stuck)
    logout = asyncio.create_task(client.post("/auth/logout",
                                             headers=bearer(login["access_token"])))
    noted = False

    async def poll() -> None:
        nonlocal noted
        member = await master["members"].find_one({"email_key": acme.email.lower()})
        noted = any(entry["id"] == sid for entry in member.get("ended_sessions", []))

    for _ in range(400):
        await poll()
        if noted:
            break
        await asyncio.sleep(0.01)
    assert noted
    try:
        session = await master["sessions"].find_one({"_id": sid})
        assert session["ended_at"] is None  # not marked: only noted on the member
        assert not await works(client, login["access_token"])
        assert await ended(await refresh(client, login["refresh_token"]))
    finally:
        logout.cancel()


async def test_a_logout_while_a_refresh_runs_ends_the_session_without_calling_it_reuse(
        client: httpx.AsyncClient, acme: Org, master: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    login = await log_in(client, acme.email)
    reached, go_on = asyncio.Event(), asyncio.Event()
    rotate = SessionRepository.rotate

    async def rotate_after_the_logout(self: SessionRepository, *args: Any) -> Any:
        reached.set()
        await asyncio.wait_for(go_on.wait(), 10)
        return await rotate(self, *args)

    monkeypatch.setattr(SessionRepository, "rotate", rotate_after_the_logout)
    refreshing = asyncio.create_task(refresh(client, login["refresh_token"]))
    await asyncio.wait_for(reached.wait(), 10)
    out = await client.post("/auth/logout", headers=bearer(login["access_token"]))
    go_on.set()

    assert out.status_code == 204
    assert await ended(await refreshing)
    assert await master["audit_log"].count_documents({"action": "session.refresh_reuse"}) == 0
