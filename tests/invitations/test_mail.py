"""The invitation mail, delivered by a real SMTP server in the test process: it names the
organization and the inviter, in plain text and HTML, and its link works."""

from __future__ import annotations

import re
from typing import Any

from org_service.config import Settings
from tests.helpers import client_for, until
from tests.invitations.support import invite, token_of
from tests.members.support import member_login, team
from tests.outbox.smtp import app_sending_to, body, smtp_server, until_stored


def link_in(text: str) -> str:
    found = re.search(r"http://\S+/invitations/[A-Za-z0-9_-]{43}", text)
    assert found, text
    return found.group(0)


async def test_the_invitation_arrives_and_its_link_makes_a_member_who_can_log_in(
        settings: Settings, master: Any) -> None:
    async with smtp_server() as smtp, app_sending_to(settings, smtp) as app, \
            client_for(app) as client:
        people = await team(client, "Acme")
        created = await invite(client, people["admin"], "new.hire@example.com")

        await until(lambda: smtp.inbox.to("new.hire@example.com"))

        [mail] = smtp.inbox.to("new.hire@example.com")
        assert "Acme Admin" in mail["Subject"] and "Acme" in mail["Subject"]
        text, html = body(mail, "plain"), body(mail, "html")
        for part in (text, html):
            assert "Acme Admin" in part and "Acme" in part and "employee" in part
        link = link_in(text)
        assert link == created["accept_url"] and link in html

        shown = await client.get(f"/invitations/{token_of(link)}")
        assert shown.status_code == 200, shown.text
        assert shown.json() == {"organization_name": "Acme", "role": "employee",
                                "email": "n***@example.com",
                                "expires_at": created["expires_at"]}
        accepted = await client.post("/invitations/accept", json={
            "token": token_of(link), "name": "New Hire", "password": "a-new-password"})
        assert accepted.status_code == 201, accepted.text
        me = await client.get("/me", headers={
            "Authorization": f"Bearer {accepted.json()['access_token']}"})
        assert me.json()["email"] == "new.hire@example.com"
        assert me.json()["role"] == "employee" and me.json()["name"] == "New Hire"
        assert (await member_login(client, "new.hire@example.com", "a-new-password")
                ).status_code == 200

        # Delivered: the body (which held the link) is gone from the outbox.
        stored = await until_stored(master, {"to": "new.hire@example.com"},
                                    lambda doc: doc["state"] == "sent")
        assert stored["sent_at"] is not None
        assert "text" not in stored and "html" not in stored
