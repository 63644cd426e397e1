"""Verification and email change mail, delivered by a real SMTP server in the test
process: the creator's link arrives and works once; an email change sends its link to the
new address and a notice to the old one, and takes effect only when the link is used."""

from __future__ import annotations

from typing import Any

from org_service.config import Settings
from tests.helpers import client_for, create_org, until
from tests.members.support import member_login
from tests.outbox.smtp import app_sending_to, body, smtp_server, until_stored
from tests.recovery.support import token_in
from tests.verification.support import verify

CONFIRM = "Confirm your email address"
CONFIRM_NEW = "Confirm your new email address"
NOTICE = "Your account's email is about to change"
NEW_EMAIL = "boss@acme.example.com"


async def test_the_verification_link_arrives_and_works_once(settings: Settings,
                                                            master: Any) -> None:
    async with smtp_server() as smtp, app_sending_to(settings, smtp) as app, \
            client_for(app) as client:
        org = await create_org(client, "Acme")
        await until(lambda: smtp.inbox.to(org.email, CONFIRM))

        [mail] = smtp.inbox.to(org.email, CONFIRM)
        token = token_in(body(mail, "plain"))
        assert token in body(mail, "html")
        assert (await verify(client, token)).status_code == 200
        assert (await verify(client, token)).status_code == 404
        me = await client.get("/me", headers=org.auth)
        assert me.json()["verified_at"] is not None
        stored = await until_stored(master, {"to": org.email, "kind": "email_verification"},
                                    lambda doc: doc["state"] == "sent")
        assert "text" not in stored  # the link left the outbox with the delivery


async def test_an_email_change_mails_the_new_address_a_link_and_the_old_one_a_notice(
        settings: Settings, master: Any) -> None:
    async with smtp_server() as smtp, app_sending_to(settings, smtp) as app, \
            client_for(app) as client:
        org = await create_org(client, "Acme")
        asked = await client.patch("/me", headers=org.auth, json={
            "email": NEW_EMAIL, "current_password": org.password})
        assert asked.status_code == 200, asked.text
        await until(lambda: smtp.inbox.to(NEW_EMAIL, CONFIRM_NEW)
                    and smtp.inbox.to(org.email, NOTICE))

        [notice] = smtp.inbox.to(org.email, NOTICE)
        assert "b***@acme.example.com" in body(notice, "plain")
        assert (await member_login(client, org.email)).status_code == 200
        assert (await member_login(client, NEW_EMAIL)).status_code == 401
        [mail] = smtp.inbox.to(NEW_EMAIL, CONFIRM_NEW)
        changed = await verify(client, token_in(body(mail, "plain")))
        assert changed.status_code == 200 and changed.json()["email_changed"] is True
        assert (await member_login(client, NEW_EMAIL)).status_code == 200
        assert (await member_login(client, org.email)).status_code == 401
