"""Email verification and email change through the API: a link verifies once; an email
change takes effect only once the new address confirms; expired, used and superseded links
change nothing; REQUIRE_VERIFIED_EMAIL refuses unverified logins and the public resend is
the way back; dead links are throttled. Interleavings are forced (both confirms held on an
event the test controls before either writes), never left to timing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId

from org_service.db import utcnow
from org_service.verification.repository import EmailVerificationRepository
from tests.helpers import DEFAULT_PASSWORD, app_with, client_for, create_org, login
from tests.invitations.support import accept, invite, token_of
from tests.members.support import member_login, team
from tests.members.test_permission_matrix import snapshot
from tests.recovery.support import queued_token
from tests.recovery.test_password_reset import audit, shown
from tests.verification.support import (
    CHANGE,
    NOTICE,
    VERIFICATION,
    HeldWrites,
    follow_link,
    verify,
)

NEW_EMAIL = "new.owner@acme.example.com"


async def change_email(client: httpx.AsyncClient, auth: dict[str, str], email: str
                       ) -> httpx.Response:
    return await client.patch("/me", headers=auth, json={
        "email": email, "current_password": DEFAULT_PASSWORD})


async def test_a_creator_is_mailed_a_link_that_verifies_once(
        client: httpx.AsyncClient, master: Any) -> None:
    org = await create_org(client, "Acme")
    me = (await client.get("/me", headers=org.auth)).json()
    assert me["verified_at"] is None and me["pending_email"] is None
    token = await queued_token(master, org.email, VERIFICATION)

    done = await verify(client, token)

    assert done.status_code == 200, done.text
    assert done.json()["email"] == org.email and done.json()["email_changed"] is False
    me = (await client.get("/me", headers=org.auth)).json()  # the session lives on
    assert me["verified_at"] == done.json()["verified_at"]
    [listed] = (await client.get("/org/members", headers=org.auth)).json()["items"]
    assert listed["verified_at"] == me["verified_at"]
    before = await snapshot(master)
    again = await verify(client, token)
    assert (again.status_code, again.json()["error"]) == (404, "not_found")
    assert await snapshot(master) == before
    confirmed = await audit(master, "email_verification.confirm")
    assert [(e["outcome"], e["reason"]) for e in confirmed] == [
        ("success", None), ("failure", "not_found")]
    [sent] = await audit(master, "email_verification.send")
    assert (sent["reason"], sent["target"]) == ("queued", org.email)


async def test_members_added_directly_get_a_link_and_invited_ones_are_verified(
        client: httpx.AsyncClient, master: Any) -> None:
    people = await team(client)
    employee, owner = people["employee"], people["owner"]
    assert (await follow_link(client, master, employee.email)).status_code == 200
    got = (await client.get(f"/org/members/{employee.id}", headers=owner.auth)).json()
    assert got["verified_at"] is not None

    created = await invite(client, people["org"], "ivy@acme.example.com")
    accepted = await accept(client, token_of(created["accept_url"]))
    assert accepted.status_code == 201, accepted.text
    bearer = {"Authorization": f"Bearer {accepted.json()['access_token']}"}
    assert (await client.get("/me", headers=bearer)).json()["verified_at"] is not None
    assert await master["outbox"].count_documents({"to": "ivy@acme.example.com",
                                                   "kind": VERIFICATION}) == 0
    resent = await client.post("/me/email/verify", headers=bearer)
    assert (resent.status_code, resent.json()["error"]) == (409, "conflict")


async def test_an_expired_link_is_gone_and_changes_nothing(
        client: httpx.AsyncClient, master: Any) -> None:
    org = await create_org(client, "Acme")
    token = await queued_token(master, org.email, VERIFICATION)
    await master["email_verifications"].update_many(
        {}, {"$set": {"expires_at": utcnow() - timedelta(seconds=1)}})
    before = await snapshot(master)

    refused = await verify(client, token)

    assert (refused.status_code, refused.json()["error"]) == (410, "gone")
    assert await snapshot(master) == before
    assert (await client.get("/me", headers=org.auth)).json()["verified_at"] is None


async def test_a_resend_kills_the_previous_link(client: httpx.AsyncClient, master: Any
                                                ) -> None:
    org = await create_org(client, "Acme")
    first = await queued_token(master, org.email, VERIFICATION)
    resent = await client.post("/me/email/verify", headers=org.auth)
    assert resent.status_code == 202 and resent.json()["email"] == org.email
    second = await queued_token(master, org.email, VERIFICATION)

    assert first != second
    assert (await verify(client, first)).status_code == 404
    assert (await verify(client, second)).status_code == 200
    refused = await client.post("/me/email/verify", headers=org.auth)
    assert (refused.status_code, refused.json()["error"]) == (409, "conflict")


async def test_two_uses_of_one_link_at_once_verify_once(
        client: httpx.AsyncClient, master: Any, services: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    org = await create_org(client, "Acme")
    token = await queued_token(master, org.email, VERIFICATION)
    # Both read the link and the unverified member, and are at their write.
    held = HeldWrites(monkeypatch, services.member_repository, "mark_verified")
    answers = await held.race(client, token)

    assert answers == [200, 404]
    [member] = await master["members"].find({}).to_list(None)
    assert member["verified_at"] is not None


async def test_get_me_reads_the_link_store_only_for_a_member_who_asked_for_a_change(
        client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    owner = (await team(client))["owner"]
    reads: list[ObjectId] = []
    real = EmailVerificationRepository.get

    async def counted(self: EmailVerificationRepository, member_id: ObjectId) -> Any:
        reads.append(member_id)
        return await real(self, member_id)

    monkeypatch.setattr(EmailVerificationRepository, "get", counted)

    assert (await client.get("/me", headers=owner.auth)).json()["pending_email"] is None
    assert reads == []  # never asked: the member document says so, no read more
    assert (await change_email(client, owner.auth, NEW_EMAIL)).status_code == 200
    reads.clear()
    assert (await client.get("/me", headers=owner.auth)).json()["pending_email"] == NEW_EMAIL
    assert len(reads) == 1


async def test_an_email_change_takes_effect_only_once_the_new_address_confirms(
        client: httpx.AsyncClient, master: Any) -> None:
    people = await team(client)
    owner = people["owner"]
    devices = [(await member_login(client, owner.email)).json() for _ in range(2)]

    asked = await change_email(client, owner.auth, NEW_EMAIL)

    assert asked.status_code == 200, asked.text
    assert (asked.json()["email"], asked.json()["pending_email"]) == (owner.email, NEW_EMAIL)
    assert (await client.get("/me", headers=owner.auth)).json()["pending_email"] == NEW_EMAIL
    [notice] = await master["outbox"].find({"to": owner.email, "kind": NOTICE}).to_list(None)
    assert "n***@acme.example.com" in notice["text"]
    # Until then: the old email logs in, the new one does not.
    assert (await member_login(client, owner.email)).status_code == 200
    assert (await member_login(client, NEW_EMAIL)).status_code == 401

    done = await follow_link(client, master, NEW_EMAIL, CHANGE)

    assert done.status_code == 200, done.text
    assert done.json() == {**done.json(), "email": NEW_EMAIL, "email_changed": True}
    assert (await member_login(client, owner.email)).status_code == 401
    fresh = await member_login(client, NEW_EMAIL)
    assert fresh.status_code == 200
    # A credential change: every session from before ended (access and refresh tokens).
    for device in devices:
        bearer = {"Authorization": f"Bearer {device['access_token']}"}
        assert (await client.get("/me", headers=bearer)).status_code == 401
        refreshed = await client.post("/auth/refresh",
                                      json={"refresh_token": device["refresh_token"]})
        assert refreshed.status_code == 401
    me = (await client.get("/me", headers={
        "Authorization": f"Bearer {fresh.json()['access_token']}"})).json()
    assert (me["email"], me["pending_email"]) == (NEW_EMAIL, None)
    assert me["verified_at"] == done.json()["verified_at"]
    [requested] = await audit(master, "email_change.request")
    assert requested["target"] == f"{owner.email} -> {NEW_EMAIL}"
    [confirmed] = await audit(master, "email_change.confirm")
    assert confirmed["target"] == f"{owner.email} -> {NEW_EMAIL}"


async def test_a_resend_during_an_email_change_goes_to_the_new_address(
        client: httpx.AsyncClient, master: Any) -> None:
    org = await create_org(client, "Acme")
    await follow_link(client, master, org.email)  # verified: only the change waits
    await change_email(client, org.auth, NEW_EMAIL)
    first = await queued_token(master, NEW_EMAIL, CHANGE)

    resent = await client.post("/me/email/verify", headers=org.auth)

    assert resent.status_code == 202 and resent.json()["email"] == NEW_EMAIL
    assert (await verify(client, first)).status_code == 404
    assert (await follow_link(client, master, NEW_EMAIL, CHANGE)).status_code == 200
    assert await login(client, NEW_EMAIL, DEFAULT_PASSWORD)


async def test_the_public_resend_renews_a_waiting_email_change_instead_of_cancelling_it(
        client: httpx.AsyncClient, master: Any) -> None:
    org = await create_org(client, "Acme")  # unverified
    await change_email(client, org.auth, NEW_EMAIL)
    first = await queued_token(master, NEW_EMAIL, CHANGE)

    resent = await client.post("/auth/verify-email/resend", json={"email": org.email})

    assert resent.status_code == 202
    assert (await verify(client, first)).status_code == 404
    assert (await follow_link(client, master, NEW_EMAIL, CHANGE)).status_code == 200
    assert await login(client, NEW_EMAIL, DEFAULT_PASSWORD)


async def test_a_new_email_taken_at_the_request_or_by_the_confirmation_is_409(
        client: httpx.AsyncClient, master: Any) -> None:
    people = await team(client)
    owner, admin = people["owner"], people["admin"]
    taken = await change_email(client, owner.auth, admin.email.upper())
    assert (taken.status_code, taken.json()["error"]) == (409, "conflict")
    assert await master["email_verifications"].count_documents({"change": True}) == 0

    # Both ask for the same free address; the first to confirm gets it.
    await change_email(client, owner.auth, NEW_EMAIL)
    owner_link = await queued_token(master, NEW_EMAIL, CHANGE)
    await change_email(client, admin.auth, NEW_EMAIL)
    assert (await follow_link(client, master, NEW_EMAIL, CHANGE)).status_code == 200
    before = await snapshot(master)

    late = await verify(client, owner_link)

    assert (late.status_code, late.json()["error"]) == (409, "conflict")
    assert await snapshot(master) == before
    assert (await member_login(client, owner.email)).status_code == 200


async def test_two_confirms_of_one_email_change_at_once_change_it_once(
        client: httpx.AsyncClient, master: Any, services: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    org = await create_org(client, "Acme")
    await change_email(client, org.auth, NEW_EMAIL)
    token = await queued_token(master, NEW_EMAIL, CHANGE)
    held = HeldWrites(monkeypatch, services.member_repository, "set_credentials")
    answers = await held.race(client, token)

    assert answers == [200, 404]
    [member] = await master["members"].find({}).to_list(None)
    assert member["email"] == NEW_EMAIL and member["token_version"] == 2


async def test_a_password_change_after_an_email_change_request_kills_its_link(
        client: httpx.AsyncClient, master: Any) -> None:
    org = await create_org(client, "Acme")
    await change_email(client, org.auth, NEW_EMAIL)
    token = await queued_token(master, NEW_EMAIL, CHANGE)
    changed = await client.patch("/me", headers=org.auth, json={
        "password": "another-password", "current_password": DEFAULT_PASSWORD})
    assert changed.status_code == 200
    before = await snapshot(master)

    refused = await verify(client, token)

    assert refused.status_code == 404
    assert await snapshot(master) == before
    assert await login(client, org.email, "another-password")


async def test_require_verified_email_refuses_unverified_logins_until_verified(
        settings: Any, master: Any) -> None:
    async with app_with(settings, REQUIRE_VERIFIED_EMAIL=True) as app, \
            client_for(app) as client:
        created = await client.post("/org/create", json={
            "organization_name": "Acme", "email": "owner@acme.example.com",
            "password": DEFAULT_PASSWORD})
        assert created.status_code == 201
        body = {"email": "owner@acme.example.com", "password": DEFAULT_PASSWORD}
        before = await snapshot(master)
        for path in ("/auth/login", "/admin/login"):
            refused = await client.post(path, json=body)
            assert (refused.status_code, refused.json()["error"]) == (403, "email_unverified")
            assert "/auth/verify-email/resend" in refused.json()["detail"]
        assert await snapshot(master) == before  # no session, no last login
        wrong = await client.post("/auth/login", json={**body, "password": "not-it-at-all"})
        assert wrong.status_code == 401  # only the password's holder learns it

        # The way back without a session: a new link by email.
        resent = await client.post("/auth/verify-email/resend",
                                   json={"email": "owner@acme.example.com"})
        assert resent.status_code == 202
        assert (await follow_link(client, master, "owner@acme.example.com")).status_code == 200
        assert (await client.post("/admin/login", json=body)).status_code == 200

        # A member from before verification (no verified_at) counts as unverified.
        await master["members"].update_one({"email": "owner@acme.example.com"},
                                           {"$unset": {"verified_at": ""}})
        legacy = await client.post("/auth/login", json=body)
        assert (legacy.status_code, legacy.json()["error"]) == (403, "email_unverified")
    denied = await audit(master, "admin.login")
    assert ("denied", "email_unverified") in {(e["outcome"], e["reason"]) for e in denied}


async def test_without_require_verified_email_unverified_members_log_in(
        client: httpx.AsyncClient, master: Any) -> None:
    org = await create_org(client, "Acme")  # logs in as its unverified owner
    member = await master["members"].find_one({"email": org.email})
    assert member["verified_at"] is None
    assert (await member_login(client, org.email)).status_code == 200


async def test_the_public_resend_answers_the_same_whatever_the_email(
        client: httpx.AsyncClient, master: Any) -> None:
    people = await team(client)
    owner, admin = people["owner"], people["admin"]
    await follow_link(client, master, admin.email)

    answers = [await client.post("/auth/verify-email/resend", json={"email": email})
               for email in (owner.email, admin.email, "nobody@example.com")]

    assert shown(answers[0]) == shown(answers[1]) == shown(answers[2])
    assert answers[0].status_code == 202
    assert await master["outbox"].count_documents({"to": owner.email,
                                                   "kind": VERIFICATION}) == 2
    assert await master["outbox"].count_documents({"to": admin.email,
                                                   "kind": VERIFICATION}) == 1
    assert await master["outbox"].count_documents({"to": "nobody@example.com"}) == 0
    reasons = [e["reason"] for e in await audit(master, "email_verification.send")]
    assert reasons[-3:] == ["queued", "verified", "unknown_email"]


async def test_dead_links_are_throttled_per_address(app: Any, settings: Any) -> None:
    dead = "A" * 43
    async with client_for(app, "198.51.100.7") as here, \
            client_for(app, "198.51.100.8") as there:
        org = await create_org(there, "Acme")
        token = await queued_token(app.state.services.mongo.master, org.email, VERIFICATION)
        for _ in range(settings.PASSWORD_RESET_MAX_PER_ADDRESS):
            assert (await verify(here, dead)).status_code == 404
        refused = await verify(here, dead)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
        # Even a good link waits, from this address; another address is not held back.
        assert (await verify(here, token)).status_code == 429
        assert (await verify(there, token)).status_code == 200


async def test_bad_input_is_refused_and_writes_nothing(
        client: httpx.AsyncClient, master: Any) -> None:
    org = await create_org(client, "Acme")
    before = await snapshot(master)
    for path, body in (("/auth/verify-email", {"token": "short"}),
                       ("/auth/verify-email", {"token": "A" * 43, "email": "x@y.com"}),
                       ("/auth/verify-email/resend", {"email": "not-an-email"}),
                       ("/auth/verify-email/resend", {})):
        refused = await client.post(path, json=body)
        assert (refused.status_code, refused.json()["error"]) == (422, "validation_error")
    bad = await client.patch("/me", headers=org.auth, json={
        "email": "not-an-email", "current_password": DEFAULT_PASSWORD})
    assert bad.status_code == 422
    assert await snapshot(master) == before
    assert await master["members"].count_documents({"_id": ObjectId(
        (await client.get("/me", headers=org.auth)).json()["id"]), "email": org.email}) == 1
