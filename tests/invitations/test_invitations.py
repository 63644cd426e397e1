"""Inviting, resending, revoking and listing, through the API; and the states an invitation
goes through, each checked against what the database says now."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from bson import ObjectId

from org_service.db import utcnow
from tests.helpers import Org, create_org
from tests.invitations.support import accept, invite, token_of
from tests.members.support import member_login, team

# The outbox holds the creators' verification mails too.
INVITATION_MAIL = {"kind": "invitation"}


async def expire(master: Any, invitation_id: str) -> None:
    """Move an invitation's expiry into the past (what a week of waiting would do)."""
    await master["invitations"].update_one(
        {"_id": ObjectId(invitation_id)},
        {"$set": {"expires_at": utcnow() - timedelta(seconds=1)}})


async def test_invite_answers_201_with_a_link_once_and_stores_only_the_token_hash(
        client: httpx.AsyncClient, master: Any) -> None:
    org = await create_org(client, "Acme")
    created = await invite(client, org, "Invitee@Example.com", expires_in_days=3)
    token = token_of(created["accept_url"])
    assert created["state"] == "pending" and created["role"] == "employee"
    assert created["expires_in_days"] == 3
    stored = await master["invitations"].find_one({"_id": ObjectId(created["id"])})
    assert token not in str(stored) and len(stored["token_hash"]) == 64
    assert stored["email_key"] == "invitee@example.com"
    [message] = await master["outbox"].find(INVITATION_MAIL).to_list(None)
    assert token in message["text"] and message["state"] == "pending"
    listed = await client.get("/org/invitations", headers=org.auth)
    assert [item["id"] for item in listed.json()["items"]] == [created["id"]]
    assert "accept_url" not in listed.json()["items"][0]


async def test_inviting_a_pending_email_again_answers_the_existing_one_with_200(
        client: httpx.AsyncClient, master: Any) -> None:
    org = await create_org(client, "Acme")
    first = await invite(client, org, "invitee@example.com")
    again = await client.post("/org/invitations", headers=org.auth,
                              json={"email": "INVITEE@example.com", "role": "manager"})
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first["id"] and again.json()["accept_url"] is None
    assert await master["invitations"].count_documents({}) == 1
    assert await master["outbox"].count_documents(INVITATION_MAIL) == 1


async def test_an_email_with_an_account_anywhere_cannot_be_invited(
        client: httpx.AsyncClient, master: Any) -> None:
    org = await create_org(client, "Acme")
    other = await create_org(client, "Globex")
    refused = await client.post("/org/invitations", headers=org.auth,
                                json={"email": other.email})
    assert refused.status_code == 409, refused.text
    assert await master["invitations"].count_documents({}) == 0
    assert await master["outbox"].count_documents(INVITATION_MAIL) == 0


async def test_resend_rotates_the_token_and_extends_the_expiry(
        client: httpx.AsyncClient, master: Any) -> None:
    org = await create_org(client, "Acme")
    first = await invite(client, org, "invitee@example.com", expires_in_days=2)
    await master["invitations"].update_one(
        {"_id": ObjectId(first["id"])}, {"$set": {"expires_at": utcnow() + timedelta(hours=1)}})

    resent = await client.post(f"/org/invitations/{first['id']}/resend", headers=org.auth)

    assert resent.status_code == 200, resent.text
    body = resent.json()
    assert body["accept_url"] != first["accept_url"] and body["resent_at"] is not None
    assert body["expires_at"] > first["expires_at"]
    old, new = token_of(first["accept_url"]), token_of(body["accept_url"])
    assert (await client.get(f"/invitations/{old}")).status_code == 404
    assert (await accept(client, old)).status_code == 404
    assert (await client.get(f"/invitations/{new}")).status_code == 200
    assert (await accept(client, new)).status_code == 201


async def test_revoke_kills_the_link_and_only_pending_invitations_change(
        client: httpx.AsyncClient, master: Any) -> None:
    org = await create_org(client, "Acme")
    created = await invite(client, org, "invitee@example.com")
    token = token_of(created["accept_url"])

    revoked = await client.post(f"/org/invitations/{created['id']}/revoke", headers=org.auth)

    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    assert revoked.json()["revoked_by"] is not None
    assert (await client.get(f"/invitations/{token}")).status_code == 404
    assert (await accept(client, token)).status_code == 404
    before = await master["invitations"].find_one({})
    for action in ("revoke", "resend"):
        again = await client.post(f"/org/invitations/{created['id']}/{action}",
                                  headers=org.auth)
        assert again.status_code == 409, again.text
        assert "revoked" in again.json()["detail"]
    assert await master["invitations"].find_one({}) == before
    assert await master["members"].count_documents({"email_key": "invitee@example.com"}) == 0
    # History: a new invitation of the same email is a new one.
    assert (await invite(client, org, "invitee@example.com"))["id"] != created["id"]


async def test_an_expired_invitation_is_410_listed_expired_and_frees_its_email(
        client: httpx.AsyncClient, master: Any) -> None:
    org = await create_org(client, "Acme")
    created = await invite(client, org, "invitee@example.com")
    token = token_of(created["accept_url"])
    await expire(master, created["id"])

    listed = await client.get("/org/invitations?state=expired", headers=org.auth)
    assert [item["state"] for item in listed.json()["items"]] == ["expired"]
    assert (await client.get("/org/invitations?state=pending", headers=org.auth)
            ).json()["items"] == []
    assert (await client.get(f"/invitations/{token}")).status_code == 410
    assert (await accept(client, token)).status_code == 410
    assert (await client.post(f"/org/invitations/{created['id']}/resend", headers=org.auth)
            ).status_code == 409
    assert await master["members"].count_documents({"email_key": "invitee@example.com"}) == 0
    assert (await master["invitations"].find_one({}))["state"] == "expired"
    again = await invite(client, org, "invitee@example.com")
    assert again["id"] != created["id"]


async def test_an_expired_pending_invitation_makes_way_for_a_new_one_when_invited_again(
        client: httpx.AsyncClient, master: Any) -> None:
    org = await create_org(client, "Acme")
    created = await invite(client, org, "invitee@example.com")
    await expire(master, created["id"])  # still "pending" in the database
    again = await client.post("/org/invitations", headers=org.auth,
                              json={"email": "invitee@example.com"})
    assert again.status_code == 201, again.text
    states = {str(doc["_id"]): doc["state"]
              async for doc in master["invitations"].find({})}
    assert states == {created["id"]: "expired", again.json()["id"]: "pending"}


async def test_accepting_with_an_email_that_got_an_account_meanwhile_is_409_and_stays_pending(
        client: httpx.AsyncClient, master: Any) -> None:
    org = await create_org(client, "Acme")
    created = await invite(client, org, "invitee@example.com")
    await create_org(client, "Globex", email="invitee@example.com")

    refused = await accept(client, token_of(created["accept_url"]))

    assert refused.status_code == 409, refused.text
    assert "already has an account" in refused.json()["detail"]
    stored = await master["invitations"].find_one({"_id": ObjectId(created["id"])})
    assert stored["state"] == "pending" and stored["member_id"] is None
    assert (await client.get(f"/invitations/{token_of(created['accept_url'])}")
            ).status_code == 200


async def test_the_accepted_member_has_the_invited_role_and_manager(
        client: httpx.AsyncClient, master: Any) -> None:
    people = await team(client, "Acme")
    created = await invite(client, people["admin"], "lead@example.com", role="manager",
                           manager_id=people["manager"].id)
    accepted = await accept(client, token_of(created["accept_url"]), name="Lead")
    assert accepted.status_code == 201, accepted.text
    answer = accepted.json()
    assert answer["role"] == "manager" and answer["organization_name"] == "Acme"
    member = await master["members"].find_one({"_id": ObjectId(answer["member_id"])})
    assert member["manager_id"] == ObjectId(people["manager"].id)
    assert member["invitation_id"] == ObjectId(created["id"])
    stored = await master["invitations"].find_one({"_id": ObjectId(created["id"])})
    assert stored["state"] == "accepted" and stored["member_id"] == member["_id"]
    # Used: the link leads nowhere now.
    assert (await accept(client, token_of(created["accept_url"]))).status_code == 404


async def test_a_manager_invites_only_employees_who_report_to_them(
        client: httpx.AsyncClient, master: Any) -> None:
    people = await team(client, "Acme")
    manager, admin = people["manager"], people["admin"]
    for body in ({"email": "a@example.com", "role": "admin"},
                 {"email": "m@example.com", "role": "manager"},
                 {"email": "e@example.com", "role": "employee", "manager_id": admin.id}):
        refused = await client.post("/org/invitations", headers=manager.auth, json=body)
        assert refused.status_code == 403, (body, refused.text)
        assert refused.json()["error"] == "permission_denied"
    assert await master["invitations"].count_documents({}) == 0

    own = await invite(client, manager, "report@example.com")
    assert own["manager_id"] == manager.id
    named = await invite(client, manager, "report2@example.com", manager_id=manager.id)
    assert named["manager_id"] == manager.id
    by_admin = await invite(client, admin, "other@example.com")

    listed = await client.get("/org/invitations", headers=manager.auth)
    assert {item["id"] for item in listed.json()["items"]} == {own["id"], named["id"]}
    for action in ("resend", "revoke"):
        hidden = await client.post(f"/org/invitations/{by_admin['id']}/{action}",
                                   headers=manager.auth)
        assert hidden.status_code == 404, hidden.text
    assert (await client.post(f"/org/invitations/{own['id']}/revoke", headers=manager.auth)
            ).status_code == 200
    everything = await client.get("/org/invitations", headers=admin.auth)
    assert len(everything.json()["items"]) == 3


async def test_nobody_invites_an_owner_or_above_their_own_role(
        client: httpx.AsyncClient, master: Any) -> None:
    people = await team(client, "Acme")
    owner_invite = await client.post("/org/invitations", headers=people["owner"].auth,
                                     json={"email": "o@example.com", "role": "owner"})
    assert owner_invite.status_code == 422, owner_invite.text
    assert (await invite(client, people["admin"], "peer@example.com", role="admin")
            )["role"] == "admin"
    assert await master["invitations"].count_documents({}) == 1


async def test_a_manager_who_left_before_the_accept_leaves_the_member_without_one(
        client: httpx.AsyncClient, master: Any) -> None:
    people = await team(client, "Acme")
    # Sent by an admin, who still may (a manager's own invitations go with them:
    # test_accept.py), naming the manager who then leaves.
    created = await invite(client, people["admin"], "report@example.com",
                           manager_id=people["manager"].id)
    removed = await client.delete(f"/org/members/{people['manager'].id}",
                                  headers=people["owner"].auth)
    assert removed.status_code == 204, removed.text

    accepted = await accept(client, token_of(created["accept_url"]))

    assert accepted.status_code == 201, accepted.text
    member = await master["members"].find_one({"_id": ObjectId(accepted.json()["member_id"])})
    assert member["manager_id"] is None
    entry = await master["audit_log"].find_one({"action": "invitation.accept"})
    assert entry["outcome"] == "success" and entry["reason"].startswith("manager_gone")


async def test_list_pages_newest_first_and_filters_by_state(
        client: httpx.AsyncClient) -> None:
    org = await create_org(client, "Acme")
    made = [await invite(client, org, f"p{n}@example.com") for n in range(3)]
    await client.post(f"/org/invitations/{made[0]['id']}/revoke", headers=org.auth)
    first = await client.get("/org/invitations?limit=2", headers=org.auth)
    second = await client.get(f"/org/invitations?limit=2&after={first.json()['next']}",
                              headers=org.auth)
    ids = [item["id"] for page in (first, second) for item in page.json()["items"]]
    assert ids == [made[2]["id"], made[1]["id"], made[0]["id"]]
    revoked = await client.get("/org/invitations?state=revoked", headers=org.auth)
    assert [item["id"] for item in revoked.json()["items"]] == [made[0]["id"]]
    bad = await client.get("/org/invitations?state=lost", headers=org.auth)
    assert bad.status_code == 422


async def test_each_step_is_in_the_audit_trail(client: httpx.AsyncClient, master: Any) -> None:
    org: Org = await create_org(client, "Acme")
    created = await invite(client, org, "invitee@example.com")
    resent = await client.post(f"/org/invitations/{created['id']}/resend", headers=org.auth)
    other = await invite(client, org, "other@example.com")
    await client.post(f"/org/invitations/{other['id']}/revoke", headers=org.auth)
    accepted = await accept(client, token_of(resent.json()["accept_url"]))
    await accept(client, token_of(created["accept_url"]))  # the old link: refused

    found = {(doc["action"], doc["outcome"]): doc
             async for doc in master["audit_log"].find({"action": {"$regex": "^invitation"}})}
    assert set(found) == {("invitation.create", "success"), ("invitation.resend", "success"),
                          ("invitation.revoke", "success"), ("invitation.accept", "success"),
                          ("invitation.accept", "failure")}
    assert found[("invitation.accept", "success")]["admin_id"] == ObjectId(
        accepted.json()["member_id"])
    assert found[("invitation.accept", "failure")]["reason"] == "not_found"
    for entry in found.values():
        assert token_of(created["accept_url"]) not in str(entry)
    assert (await member_login(client, "invitee@example.com")).status_code == 200
