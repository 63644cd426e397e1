"""The permission matrix, generated from the one role table (org_service/roles.py): every
protected route x every role, each cell allowed or refused with 403 `permission_denied`
and nothing written; and from another organization, 403 (X-Organization-ID) or 404 (its
ids), nothing written."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest

from org_service.main import create_app
from org_service.roles import ROLE_PERMISSIONS
from tests.members.support import Person, team
from tests.tenancy.test_route_guard import api_routes, permissions

# Lowest role first: the refused cells run before any allowed one can change the state.
ROLES = ("employee", "manager", "admin", "owner")
_emails = itertools.count()


class Fixture:
    """One organization's team, plus a record, an index, a member and an invitation to act
    on."""

    def __init__(self, people: dict[str, Any], record_id: str, index: str, target: Person,
                 target_session: str, invitation_id: str) -> None:
        self.people = people
        self.record_id = record_id
        self.index = index
        self.target = target
        self.target_session = target_session
        self.invitation_id = invitation_id


Build = Callable[[Fixture], tuple[str, Any]]


def _new_member(_: Fixture) -> dict[str, Any]:
    return {"email": f"new{next(_emails)}@matrix.example.com", "password": "secure123",
            "name": "New Person"}


# Every protected route: the URL and body of one request that its permission allows.
REQUESTS: dict[tuple[str, str], Build] = {
    ("GET", "/admin/me"): lambda f: ("/admin/me", None),
    ("GET", "/me"): lambda f: ("/me", None),
    ("PATCH", "/me"): lambda f: ("/me", {"title": "Matrix"}),
    ("PUT", "/org/update"): lambda f: ("/org/update", {
        "old_organization_name": "Acme", "new_organization_name": "ACME"}),
    ("DELETE", "/org/delete"): lambda f: ("/org/delete", {"organization_name": "Acme"}),
    ("GET", "/org/records"): lambda f: ("/org/records", None),
    ("POST", "/org/records/{kind}"): lambda f: ("/org/records/notes", {"a": 1}),
    ("POST", "/org/records/{kind}/bulk"): lambda f: ("/org/records/notes/bulk", [{"a": 1}]),
    ("GET", "/org/records/{kind}"): lambda f: ("/org/records/notes", None),
    ("POST", "/org/records/{kind}/query"): lambda f: ("/org/records/notes/query",
                                                       {"filter": {"a": 1}}),
    ("GET", "/org/records/{kind}/{record_id}"): lambda f: (
        f"/org/records/notes/{f.record_id}", None),
    ("PUT", "/org/records/{kind}/{record_id}"): lambda f: (
        f"/org/records/notes/{f.record_id}", {"a": 2}),
    ("PATCH", "/org/records/{kind}/{record_id}"): lambda f: (
        f"/org/records/notes/{f.record_id}", {"b": 3}),
    ("DELETE", "/org/records/{kind}/{record_id}"): lambda f: (
        f"/org/records/notes/{f.record_id}", None),
    ("GET", "/org/export"): lambda f: ("/org/export", None),
    ("GET", "/org/indexes"): lambda f: ("/org/indexes", None),
    ("POST", "/org/indexes"): lambda f: ("/org/indexes", {
        "name": "by_b", "kind": "notes", "fields": [{"path": "b"}]}),
    ("DELETE", "/org/indexes/{name}"): lambda f: (f"/org/indexes/{f.index}", None),
    ("GET", "/org/audit"): lambda f: ("/org/audit", None),
    ("GET", "/org/records/{kind}/policy"): lambda f: ("/org/records/notes/policy", None),
    ("PUT", "/org/records/{kind}/policy"): lambda f: ("/org/records/notes/policy", {
        "read": ["employee", "manager"], "write": ["employee", "manager"]}),
    ("GET", "/org/stats"): lambda f: ("/org/stats", None),
    ("GET", "/org/members"): lambda f: ("/org/members", None),
    ("POST", "/org/members"): lambda f: ("/org/members", _new_member(f)),
    ("GET", "/org/members/{member_id}"): lambda f: (f"/org/members/{f.target.id}", None),
    ("PATCH", "/org/members/{member_id}"): lambda f: (f"/org/members/{f.target.id}",
                                                      {"title": "Matrix"}),
    ("DELETE", "/org/members/{member_id}"): lambda f: (f"/org/members/{f.target.id}", None),
    ("POST", "/org/members/{member_id}/suspend"): lambda f: (
        f"/org/members/{f.target.id}/suspend", None),
    ("POST", "/org/members/{member_id}/reactivate"): lambda f: (
        f"/org/members/{f.target.id}/reactivate", None),
    ("GET", "/org/members/{member_id}/reports"): lambda f: (
        f"/org/members/{f.target.id}/reports", None),
    ("POST", "/org/ownership/transfer"): lambda f: ("/org/ownership/transfer",
                                                    {"member_id": f.target.id}),
    ("POST", "/auth/logout"): lambda f: ("/auth/logout", None),
    # Everyone's email is unverified here (added directly): a new link for each.
    ("POST", "/me/email/verify"): lambda f: ("/me/email/verify", None),
    ("GET", "/me/sessions"): lambda f: ("/me/sessions", None),
    # Another member's session: nobody's own, so 404 for everyone (ending your own is
    # tested with the sessions).
    ("DELETE", "/me/sessions/{session_id}"): lambda f: (f"/me/sessions/{f.target_session}",
                                                        None),
    ("DELETE", "/org/members/{member_id}/sessions"): lambda f: (
        f"/org/members/{f.target.id}/sessions", None),
    # An employee, with no manager named: what a manager may send too.
    ("POST", "/org/invitations"): lambda f: ("/org/invitations", {
        "email": f"invitee{next(_emails)}@matrix.example.com", "role": "employee"}),
    ("GET", "/org/invitations"): lambda f: ("/org/invitations", None),
    ("POST", "/org/invitations/{invitation_id}/resend"): lambda f: (
        f"/org/invitations/{f.invitation_id}/resend", None),
    ("POST", "/org/invitations/{invitation_id}/revoke"): lambda f: (
        f"/org/invitations/{f.invitation_id}/revoke", None),
}


def declared() -> dict[tuple[str, str], str]:
    return {(method, route.path_format): permissions(route.dependant)[0]
            for route in api_routes(create_app()) for method in route.methods
            if permissions(route.dependant)}


# The permission each route declares, as the README's route table documents it.
DOCUMENTED = {
    **dict.fromkeys([("GET", "/admin/me"), ("GET", "/me"), ("PATCH", "/me"),
                     ("POST", "/auth/logout"), ("GET", "/me/sessions"),
                     ("POST", "/me/email/verify"),
                     ("DELETE", "/me/sessions/{session_id}")], "self"),
    ("PUT", "/org/update"): "org:update",
    ("DELETE", "/org/delete"): "org:delete",
    ("POST", "/org/ownership/transfer"): "org:transfer",
    ("GET", "/org/audit"): "audit:read",
    **{route: "records:read" for route in REQUESTS if route[0] in ("GET", "POST")
       and route[1].startswith(("/org/records", "/org/export"))
       and route not in {("POST", "/org/records/{kind}"), ("POST", "/org/records/{kind}/bulk")}},
    ("POST", "/org/records/{kind}/query"): "records:read",
    **{route: "records:write" for route in [
        ("POST", "/org/records/{kind}"), ("POST", "/org/records/{kind}/bulk"),
        ("PUT", "/org/records/{kind}/{record_id}"), ("PATCH", "/org/records/{kind}/{record_id}"),
        ("DELETE", "/org/records/{kind}/{record_id}")]},
    **{route: "indexes:manage" for route in REQUESTS if route[1].startswith("/org/indexes")},
    **{route: "members:read" for route in REQUESTS
       if route[0] == "GET" and route[1].startswith("/org/members")},
    **{route: "members:manage" for route in REQUESTS
       if route[0] != "GET" and route[1].startswith("/org/members")},
    ("GET", "/org/records/{kind}/policy"): "records:policy",
    ("PUT", "/org/records/{kind}/policy"): "records:policy",
    ("GET", "/org/stats"): "stats:read",
    # A manager too, narrowed to their own invitations (invitations:manage: all of them).
    **{route: "invitations:create" for route in REQUESTS
       if route[1].startswith("/org/invitations")},
}


def test_every_protected_route_is_in_the_matrix_with_its_documented_permission() -> None:
    assert declared() == DOCUMENTED
    assert set(REQUESTS) == set(DOCUMENTED)


async def snapshot(master: Any) -> dict[str, list[Any]]:
    """Everything a request could change; the audit trail and throttles aside."""
    state = {}
    for name in sorted(await master.list_collection_names()):
        if name not in {"audit_log", "login_failures", "migrations"}:
            state[name] = await master[name].find({}, {"last_login_at": 0}).sort(
                "_id", 1).to_list(None)
    return state


async def build(client: httpx.AsyncClient, name: str) -> Fixture:
    people = await team(client, name)
    owner = people["owner"]
    # Every role writes this kind: the matrix checks the role table (the per-kind policies
    # are tested with the records).
    opened = await client.put("/org/records/notes/policy", headers=owner.auth, json={
        "read": ["employee", "manager"], "write": ["employee", "manager"]})
    assert opened.status_code == 200, opened.text
    record = await client.post("/org/records/notes", headers=owner.auth, json={"a": 1})
    index_name = f"by_a_{name.lower()}"
    index = await client.post("/org/indexes", headers=owner.auth, json={
        "name": index_name, "kind": "notes", "fields": [{"path": "a"}]})
    assert index.status_code in (201, 202), index.text
    target = await client.post("/org/members", headers=owner.auth, json={
        "email": f"target@{name.lower()}.example.com", "password": "secure123",
        "name": "Target", "role": "employee", "manager_id": people["manager"].id})
    session = await client.post("/auth/login", json={"email": target.json()["email"],
                                                      "password": "secure123"})
    target_session = jwt.decode(session.json()["access_token"],
                                options={"verify_signature": False})["sid"]
    invitation = await client.post("/org/invitations", headers=owner.auth, json={
        "email": f"invited@{name.lower()}.example.com", "role": "employee"})
    assert invitation.status_code == 201, invitation.text
    return Fixture(people, record.json()["id"], index_name,
                   Person(target.json()["id"], target.json()["email"], "employee", ""),
                   target_session, invitation.json()["id"])


def allowed_roles(permission: str) -> set[str]:
    return {role for role in ROLES
            if permission == "self" or permission in ROLE_PERMISSIONS[role]}


@pytest.mark.parametrize("route", sorted(REQUESTS), ids=lambda r: f"{r[0]} {r[1]}")
async def test_each_role_is_allowed_exactly_what_the_table_says(
        client: httpx.AsyncClient, master: Any, route: tuple[str, str]) -> None:
    method, _ = route
    permission = declared()[route]
    acme = await build(client, "Acme")
    globex = await build(client, "Globex")
    url, body = REQUESTS[route](acme)

    # Another organization: its owner naming this organization in X-Organization-ID, or
    # using this organization's ids, changes nothing here.
    before = await snapshot(master)
    stranger = globex.people["owner"]
    crossed = await client.request(method, url, json=body, headers={
        **stranger.auth, "X-Organization-ID": acme.people["org"].id})
    assert crossed.status_code == 403, crossed.text
    if any(f"{{{name}}}" in route[1]
           for name in ("record_id", "member_id", "name", "session_id", "invitation_id")):
        foreign = await client.request(method, url, json=body, headers=stranger.auth)
        assert foreign.status_code == 404, (route, foreign.text)
    assert await snapshot(master) == before

    for role in ROLES:
        person = acme.people[role]
        url, body = REQUESTS[route](acme)
        before = await snapshot(master)
        response = await client.request(method, url, json=body, headers=person.auth)
        if role in allowed_roles(permission):
            assert response.status_code < 500 and response.status_code != 403, (
                role, response.text)
        else:
            assert response.status_code == 403, (role, response.text)
            assert response.json()["error"] == "permission_denied"
            assert await snapshot(master) == before, role
