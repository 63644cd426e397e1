"""The reset mail, delivered by a real SMTP server in the test process: its link works
once; and the mail of a link a newer request replaced is never sent."""

from __future__ import annotations

from typing import Any

from org_service.config import Settings
from tests.helpers import client_for, create_org, until
from tests.members.support import member_login
from tests.outbox.smtp import app_sending_to, body, smtp_server, until_stored
from tests.recovery.support import confirm, request_reset, token_in

RESET = "Reset your password"


async def test_the_reset_link_arrives_and_works_once(settings: Settings, master: Any) -> None:
    async with smtp_server() as smtp, app_sending_to(settings, smtp) as app, \
            client_for(app) as client:
        org = await create_org(client, "Acme")
        assert (await request_reset(client, org.email)).status_code == 202

        await until(lambda: smtp.inbox.to(org.email, RESET))

        [mail] = smtp.inbox.to(org.email, RESET)
        text, html = body(mail, "plain"), body(mail, "html")
        token = token_in(text)
        assert token in html
        assert (await confirm(client, token, "a-new-password")).status_code == 204
        assert (await confirm(client, token, "another-password")).status_code == 404
        assert (await member_login(client, org.email, "a-new-password")).status_code == 200
        stored = await until_stored(master, {"to": org.email, "kind": "password_reset"},
                                    lambda doc: doc["state"] == "sent")
        assert "text" not in stored  # the link left the outbox with the delivery


async def test_the_mail_of_a_replaced_link_is_never_sent(
        settings: Settings, master: Any, client: Any) -> None:
    # Both requested while no sender runs (the suite's app has none); then one starts.
    org = await create_org(client, "Acme")
    await request_reset(client, org.email)
    await request_reset(client, org.email)
    first, second = await master["outbox"].find({"to": org.email, "kind": "password_reset"}).sort(
        "_id", 1).to_list(None)

    async with smtp_server() as smtp, app_sending_to(settings, smtp):
        await until_stored(master, {"_id": second["_id"]}, lambda doc: doc["state"] == "sent")
        dropped = await until_stored(master, {"_id": first["_id"]},
                                     lambda doc: doc["state"] == "dropped")

    [mail] = smtp.inbox.to(org.email, RESET)
    assert token_in(body(mail, "plain")) == token_in(second["text"])
    assert dropped["last_error"] == "its guard no longer holds"
