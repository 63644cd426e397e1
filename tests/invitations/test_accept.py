"""Accepting an invitation when things overlap or break: each interleaving is forced (the
password hash held on an event the test controls, or a failpoint), never left to timing.
And the public routes' refusals: bad input, dead links, throttling."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx
import pytest
from bson import ObjectId

from tests.auth.test_throttle_cli import cleared, invoke
from tests.helpers import HeldHashes, client_for, create_org, until
from tests.invitations.support import accept, invite, token_of
from tests.members.support import member_login, team
from tests.members.test_permission_matrix import snapshot


@pytest.fixture
def held(services: Any, monkeypatch: pytest.MonkeyPatch) -> HeldHashes:
    hashes = HeldHashes(services.hasher.hash)
    monkeypatch.setattr(services.hasher, "hash", hashes)
    return hashes


async def test_two_accepts_of_one_token_at_once_make_exactly_one_member(
        client: httpx.AsyncClient, master: Any, held: HeldHashes) -> None:
    org = await create_org(client, "Acme")
    created = await invite(client, org, "invitee@example.com")
    token = token_of(created["accept_url"])
    held.armed = True

    racing = [asyncio.create_task(accept(client, token, name=name, password=f"{name}-pass"))
              for name in ("First", "Second")]
    # Both are past every check but the database's own before either writes.
    await until(lambda: held.done == 2)
    held.release.set()
    answers = await asyncio.gather(*racing)

    assert sorted(answer.status_code for answer in answers) == [201, 409]
    [member] = await master["members"].find({"email_key": "invitee@example.com"}).to_list(None)
    [won] = [answer for answer in answers if answer.status_code == 201]
    [lost] = [answer for answer in answers if answer.status_code == 409]
    assert won.json()["member_id"] == str(member["_id"])
    assert "already accepted" in lost.json()["detail"]
    stored = await master["invitations"].find_one({"_id": ObjectId(created["id"])})
    assert stored["state"] == "accepted" and stored["member_id"] == member["_id"]


async def test_an_accept_whose_invitation_a_losing_accept_finished_still_succeeds(
        client: httpx.AsyncClient, master: Any, services: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    org = await create_org(client, "Acme")
    created = await invite(client, org, "invitee@example.com")
    token = token_of(created["accept_url"])
    repository = services.invitations.invitations
    real_accept, inserted, release = repository.accept, asyncio.Event(), asyncio.Event()

    async def held_accept(*args: Any, **kwargs: Any) -> Any:
        inserted.set()  # the member is written; its invitation not yet
        await release.wait()
        return await real_accept(*args, **kwargs)

    monkeypatch.setattr(repository, "accept", held_accept)
    first = asyncio.create_task(accept(client, token, name="First"))
    await inserted.wait()
    # The second loses the insert and finishes the invitation for the first's member.
    second = await accept(client, token, name="Second")
    release.set()
    answer = await first

    assert second.status_code == 409 and "already accepted" in second.json()["detail"]
    assert answer.status_code == 201, answer.text
    member = await master["members"].find_one({"email_key": "invitee@example.com"})
    assert member is not None and str(member["_id"]) == answer.json()["member_id"]
    stored = await master["invitations"].find_one({})
    assert stored["state"] == "accepted" and stored["member_id"] == member["_id"]


async def test_an_invitation_revoked_while_its_accept_runs_creates_nobody(
        client: httpx.AsyncClient, master: Any, held: HeldHashes) -> None:
    org = await create_org(client, "Acme")
    created = await invite(client, org, "invitee@example.com")
    held.armed = True

    accepting = asyncio.create_task(accept(client, token_of(created["accept_url"])))
    await until(lambda: held.done == 1)
    revoked = await client.post(f"/org/invitations/{created['id']}/revoke", headers=org.auth)
    held.release.set()
    answer = await accepting

    assert revoked.status_code == 200, revoked.text
    assert answer.status_code == 404, answer.text
    assert await master["members"].count_documents({"email_key": "invitee@example.com"}) == 0
    stored = await master["invitations"].find_one({"_id": ObjectId(created["id"])})
    assert stored["state"] == "revoked" and stored["member_id"] is None


@pytest.mark.parametrize("lapse", ["demoted", "suspended", "removed"])
async def test_an_invitation_whose_sender_lost_the_right_to_grant_it_makes_nobody(
        client: httpx.AsyncClient, master: Any, lapse: str) -> None:
    people = await team(client)
    owner, manager = people["owner"], people["manager"]
    by_manager = await invite(client, manager, "report@example.com")
    by_owner = await invite(client, owner, "other@example.com")
    changed = {
        "demoted": lambda: client.patch(f"/org/members/{manager.id}", headers=owner.auth,
                                        json={"role": "employee"}),
        "suspended": lambda: client.post(f"/org/members/{manager.id}/suspend",
                                         headers=owner.auth),
        "removed": lambda: client.delete(f"/org/members/{manager.id}", headers=owner.auth),
    }[lapse]
    assert (await changed()).status_code in (200, 204)

    token = token_of(by_manager["accept_url"])
    preview = await client.get(f"/invitations/{token}")
    refused = await accept(client, token)

    assert preview.status_code == 404, preview.text
    assert "can no longer grant" in preview.json()["detail"]
    assert refused.status_code == 404, refused.text
    assert await master["members"].count_documents({"email_key": "report@example.com"}) == 0
    stored = await master["invitations"].find_one({"_id": ObjectId(by_manager["id"])})
    assert stored["state"] == "revoked"
    # The owner's own invitation is untouched by the manager's lapse.
    owners = token_of(by_owner["accept_url"])
    assert (await client.get(f"/invitations/{owners}")).status_code == 200
    assert (await accept(client, owners)).status_code == 201


async def test_the_accept_itself_checks_the_sender_too(
        client: httpx.AsyncClient, master: Any) -> None:
    people = await team(client)
    created = await invite(client, people["manager"], "report@example.com")
    token = token_of(created["accept_url"])
    assert (await client.get(f"/invitations/{token}")).status_code == 200
    suspended = await client.post(f"/org/members/{people['manager'].id}/suspend",
                                  headers=people["owner"].auth)
    assert suspended.status_code == 200, suspended.text

    refused = await accept(client, token)

    assert refused.status_code == 404, refused.text
    assert "can no longer grant" in refused.json()["detail"]
    assert await master["members"].count_documents({"email_key": "report@example.com"}) == 0


async def test_a_crash_between_the_member_and_the_invitation_is_finished_by_a_retry(
        client: httpx.AsyncClient, master: Any, raw_client: Any) -> None:
    org = await create_org(client, "Acme")
    created = await invite(client, org, "invitee@example.com")
    token = token_of(created["accept_url"])
    # The invitation's compare-and-set (the accept's only findAndModify) fails, the
    # driver's own retry too: the request ends after the member was written.
    await raw_client.admin.command({
        "configureFailPoint": "failCommand", "mode": {"times": 2},
        "data": {"failCommands": ["findAndModify"], "errorCode": 6}})
    try:
        crashed = await accept(client, token, password="chosen-password")
    finally:
        await raw_client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
    assert crashed.status_code == 503, crashed.text
    member = await master["members"].find_one({"email_key": "invitee@example.com"})
    assert member["invitation_id"] == ObjectId(created["id"])
    assert (await master["invitations"].find_one({}))["state"] == "pending"

    retried = await accept(client, token, password="chosen-password")

    assert retried.status_code == 409, retried.text
    assert "already accepted" in retried.json()["detail"]
    stored = await master["invitations"].find_one({})
    assert stored["state"] == "accepted" and stored["member_id"] == member["_id"]
    assert (await member_login(client, "invitee@example.com", "chosen-password")
            ).status_code == 200
    assert await master["members"].count_documents({"email_key": "invitee@example.com"}) == 1


async def test_dead_links_from_one_address_are_throttled_and_the_operator_clears_them(
        app: Any, master: Any) -> None:
    address = "198.51.100.77"
    async with client_for(app, address) as client, client_for(app) as elsewhere:
        org = await create_org(elsewhere, "Acme")
        created = await invite(elsewhere, org, "invitee@example.com")
        for n in range(20):
            probe = (client.get(f"/invitations/{secrets.token_urlsafe(32)}") if n % 2 else
                     accept(client, secrets.token_urlsafe(32)))
            assert (await probe).status_code == 404
        refused = await client.get(f"/invitations/{secrets.token_urlsafe(32)}")
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
        # Even a good link waits now, from this address only.
        good = token_of(created["accept_url"])
        assert (await accept(client, good)).status_code == 429
        assert (await elsewhere.get(f"/invitations/{good}")).status_code == 200
        assert await master["members"].count_documents({"email_key": "invitee@example.com"}) == 0

        result = await invoke("throttle", "clear", "--address", address)

        assert result.exit_code == 0, result.output
        assert cleared(result) == 1
        assert (await accept(client, good)).status_code == 201


BAD_ACCEPTS: list[Any] = [
    {},
    {"token": "short", "name": "N", "password": "secure123"},
    {"token": "A" * 42 + "!", "name": "N", "password": "secure123"},
    {"token": "VALID", "name": "", "password": "secure123"},
    {"token": "VALID", "name": "N", "password": "short"},
    {"token": "VALID", "name": "N", "password": "x" * 129},
    {"token": "VALID", "name": "N"},
    {"token": "VALID", "name": "N", "password": "secure123", "role": "owner"},
    {"token": "VALID", "name": "N", "password": "secure123", "manager_id": None},
    {"token": ["VALID"], "name": "N", "password": "secure123"},
    [],
    "token",
]


@pytest.mark.parametrize("body", BAD_ACCEPTS)
async def test_bad_accepts_are_422_and_write_nothing(
        client: httpx.AsyncClient, master: Any, body: Any) -> None:
    org = await create_org(client, "Acme")
    token = token_of((await invite(client, org, "invitee@example.com"))["accept_url"])
    if isinstance(body, dict):
        body = {key: token if value == "VALID" else value for key, value in body.items()}
    before = await snapshot(master)
    response = await client.post("/invitations/accept", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "validation_error"
    assert await snapshot(master) == before


@pytest.mark.parametrize("request_", [
    ("GET", "/invitations/short", None),
    ("GET", "/invitations/" + "A" * 44, None),
    ("GET", "/invitations/" + "A" * 42 + "%2F", None),
    ("POST", "/invitations/accept", b"{not json"),
    ("POST", "/invitations/accept", b'{"token": NaN}'),
], ids=["short", "long", "slash", "not-json", "nan"])
async def test_other_bad_public_requests_are_4xx_and_write_nothing(
        client: httpx.AsyncClient, master: Any, request_: tuple[str, str, bytes | None]
) -> None:
    method, url, content = request_
    await create_org(client, "Acme")
    before = await snapshot(master)
    response = await client.request(method, url, content=content,
                                    headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]
    assert await snapshot(master) == before
