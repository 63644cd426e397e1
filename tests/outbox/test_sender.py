"""The outbox's sender against a real SMTP server: mail queued while the server is down
arrives once it is back; a dead sender's claim is taken over; a message whose guard no
longer holds is dropped, never sent; without SMTP_URL the mail goes to the log."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

import pytest
from bson import ObjectId

from org_service.config import Settings
from org_service.db import utcnow
from org_service.outbox.messages import Guard, Message
from tests.helpers import app_with, client_for, create_org, until
from tests.invitations.support import invite, token_of
from tests.outbox.smtp import app_sending_to, body, smtp_server, until_stored


async def state_of(master: Any, **query: Any) -> str:
    doc = await master["outbox"].find_one(query)
    assert doc is not None, query
    state: str = doc["state"]
    return state


async def test_mail_queued_while_the_smtp_server_is_down_arrives_when_it_is_back(
        settings: Settings, master: Any) -> None:
    # Attempts enough for the restart to come before the last one.
    async with smtp_server() as smtp, app_sending_to(
            settings, smtp, OUTBOX_MAX_ATTEMPTS=1000) as app, client_for(app) as client:
        org = await create_org(client, "Acme")
        await smtp.stop()

        created = await invite(client, org, "invitee@example.com")

        # The request did not wait for the mail; the sender failed and is retrying.
        doc = await until_stored(master, {"to": "invitee@example.com"}, lambda doc: (
            doc["attempts"] >= 3 and doc["state"] == "pending"))
        assert "SMTPConnectError" in doc["last_error"]
        assert smtp.inbox.to("invitee@example.com") == []

        await smtp.start()
        back = time.monotonic()
        await until(lambda: smtp.inbox.to("invitee@example.com"))
        print(f"arrived {time.monotonic() - back:.3f}s after the SMTP server came back")

        [mail] = smtp.inbox.to("invitee@example.com")
        assert created["accept_url"] in body(mail, "plain")
        await until_stored(master, {"to": "invitee@example.com"},
                           lambda doc: doc["state"] == "sent")


async def test_a_message_claimed_by_a_sender_that_died_is_delivered_by_another(
        settings: Settings, master: Any) -> None:
    async with smtp_server() as smtp:
        # A sender that claimed it and died: its lease ran out a moment ago.
        now = utcnow()
        await master["outbox"].insert_one({
            "_id": ObjectId(), "to": "someone@example.com", "subject": "Hello",
            "text": "plain", "html": "<p>html</p>", "kind": "test", "organization_id": None,
            "guard": None, "created_at": now, "state": "sending", "attempts": 1,
            "next_attempt_at": now, "lease_until": now - timedelta(seconds=1),
            "claim": "a-dead-sender", "last_error": None, "sent_at": None})

        async with app_sending_to(settings, smtp):
            await until(lambda: smtp.inbox.to("someone@example.com"))
            doc = await until_stored(master, {"to": "someone@example.com"},
                                     lambda doc: doc["state"] == "sent")

        assert doc["claim"] != "a-dead-sender"
        assert doc["attempts"] == 2


async def test_a_message_whose_sender_holds_a_live_lease_is_left_alone(
        settings: Settings, master: Any, services: Any) -> None:
    now = utcnow()
    await master["outbox"].insert_one({
        "_id": ObjectId(), "to": "someone@example.com", "subject": "Hello", "text": "plain",
        "html": "<p>html</p>", "kind": "test", "organization_id": None, "guard": None,
        "created_at": now, "state": "sending", "attempts": 1, "next_attempt_at": now,
        "lease_until": now + timedelta(minutes=1), "claim": "a-live-sender",
        "last_error": None, "sent_at": None})
    assert await services.outbox_sender.deliver_one() is False
    assert await state_of(master, to="someone@example.com") == "sending"


async def test_resend_drops_the_mail_of_the_old_link_if_it_was_not_sent_yet(
        client: Any, master: Any, services: Any) -> None:
    # The session's app does not deliver by itself: each step runs when the test says.
    org = await create_org(client, "Acme")
    created = await invite(client, org, "invitee@example.com")
    resent = await client.post(f"/org/invitations/{created['id']}/resend", headers=org.auth)
    old, new = token_of(created["accept_url"]), token_of(resent.json()["accept_url"])

    # The owner's verification mail, then both invitation mails.
    for _ in range(3):
        assert await services.outbox_sender.deliver_one() is True
    assert await services.outbox_sender.deliver_one() is False

    first, second = await master["outbox"].find({"kind": "invitation"}).sort(
        "_id", 1).to_list(None)
    assert first["state"] == "dropped" and "no longer holds" in first["last_error"]
    assert "text" not in first and "html" not in first
    assert second["state"] == "sent"
    assert old not in str(await master["outbox"].find({}).to_list(None))
    assert new not in str(await master["outbox"].find({}).to_list(None))


async def test_mail_of_a_revoked_invitation_is_never_sent(
        client: Any, master: Any, services: Any, caplog: pytest.LogCaptureFixture) -> None:
    org = await create_org(client, "Acme")
    created = await invite(client, org, "invitee@example.com")
    await client.post(f"/org/invitations/{created['id']}/revoke", headers=org.auth)
    with caplog.at_level(logging.INFO, logger="org_service"):
        # The owner's verification mail, then the invitation's.
        assert await services.outbox_sender.deliver_one() is True
        assert await services.outbox_sender.deliver_one() is True
    assert await state_of(master, to="invitee@example.com") == "dropped"
    assert token_of(created["accept_url"]) not in caplog.text


async def test_a_message_waits_for_its_guard_then_gives_up_on_it(
        master: Any, services: Any) -> None:
    message = Message(to="someone@example.com", subject="Hello", text="t", html="h",
                      kind="test", guard=Guard(collection="invitations", id=ObjectId(),
                                               fields={"state": "pending"}))
    await services.outbox.enqueue(message)

    # Not written yet: the request that queued it may still be writing it.
    assert await services.outbox_sender.deliver_one() is True
    doc = await master["outbox"].find_one({"_id": message.id})
    assert doc["state"] == "pending" and doc["attempts"] == 0
    assert doc["next_attempt_at"] > utcnow() - timedelta(seconds=1)

    # Past the grace period, it will never come: the message is an orphan.
    grace = timedelta(seconds=services.settings.outbox_guard_grace_seconds)
    await master["outbox"].update_one({"_id": message.id}, {"$set": {
        "created_at": utcnow() - grace - timedelta(seconds=1), "next_attempt_at": utcnow()}})
    assert await services.outbox_sender.deliver_one() is True
    doc = await master["outbox"].find_one({"_id": message.id})
    assert doc["state"] == "dropped" and "never came" in doc["last_error"]


async def test_after_the_last_attempt_the_message_is_failed_and_logged(
        settings: Settings, master: Any, caplog: pytest.LogCaptureFixture) -> None:
    async with smtp_server() as smtp:
        await smtp.stop()
        with caplog.at_level(logging.WARNING, logger="org_service"):
            async with app_sending_to(settings, smtp, OUTBOX_MAX_ATTEMPTS=3) as app:
                await app.state.services.outbox.enqueue(Message(
                    to="someone@example.com", subject="Hello", text="t", html="h",
                    kind="test"))
                app.state.services.outbox.notify()
                doc = await until_stored(master, {"to": "someone@example.com"},
                                         lambda doc: doc["state"] == "failed")
    assert doc["attempts"] == 3 and doc["last_error"]
    assert doc["text"] == "t"  # kept, for an operator to send again
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "failed for good" in errors[0].getMessage()


async def test_without_smtp_url_the_mail_and_its_link_go_to_the_log(
        settings: Settings, master: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="org_service"):
        async with app_with(settings, SMTP_URL=None, OUTBOX_SENDER_ENABLED=True) as app, \
                client_for(app) as client:
            org = await create_org(client, "Acme")
            created = await invite(client, org, "invitee@example.com")
            await until(lambda: any(getattr(r, "mail_to", None) == "invitee@example.com"
                                    for r in caplog.records))
    [line] = [r for r in caplog.records
              if getattr(r, "mail_to", None) == "invitee@example.com"]
    assert created["accept_url"] in line.mail_text  # type: ignore[attr-defined]
    assert "Acme" in line.mail_subject  # type: ignore[attr-defined]
    assert await state_of(master, to="invitee@example.com") == "sent"
