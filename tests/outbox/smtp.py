"""A real SMTP server in the test process (aiosmtpd, in a thread of its own), and an app
that delivers to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from pydantic import SecretStr

from org_service.embedded import free_port
from tests.helpers import app_with

# Small enough that a retry comes within a test's patience, large enough to be a backoff.
FAST_RETRIES = {"OUTBOX_RETRY_BASE_SECONDS": 0.05, "OUTBOX_RETRY_MAX_SECONDS": 0.2,
                "OUTBOX_POLL_SECONDS": 0.5, "SMTP_TIMEOUT_SECONDS": 2}


class Inbox:
    """aiosmtpd's handler: every message the server accepted, parsed."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        content = envelope.content
        assert isinstance(content, bytes)
        parsed = message_from_bytes(content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 Message accepted for delivery"

    def to(self, address: str, subject: str | None = None) -> list[EmailMessage]:
        """The messages to `address` (with this subject, if given)."""
        return [message for message in self.messages if message["To"] == address
                and subject in (None, message["Subject"])]


class SmtpServer:
    """Started and stopped at will, always on the same port (the app's SMTP_URL)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.inbox = Inbox()
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        # start() waits (blocking) until the server answers: not on the event loop.
        await asyncio.to_thread(self._controller.start)

    async def stop(self) -> None:
        if self._controller is not None:
            await asyncio.to_thread(self._controller.stop)
            self._controller = None


@asynccontextmanager
async def smtp_server() -> AsyncIterator[SmtpServer]:
    server = SmtpServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@asynccontextmanager
async def app_sending_to(settings: Any, server: SmtpServer, **changes: Any
                         ) -> AsyncIterator[Any]:
    """An app whose sender delivers to `server`, retrying fast."""
    async with app_with(settings, SMTP_URL=SecretStr(server.url), OUTBOX_SENDER_ENABLED=True,
                        **{**FAST_RETRIES, **changes}) as app:
        yield app


async def until_stored(master: Any, query: dict[str, Any], condition: Any) -> dict[str, Any]:
    """Wait for the outbox message `query` to satisfy `condition` (a state, not a time:
    the deadline only keeps a broken run from hanging); the message as it then was."""
    for _ in range(2000):
        doc: dict[str, Any] | None = await master["outbox"].find_one(query)
        if doc is not None and condition(doc):
            return doc
        await asyncio.sleep(0.005)
    raise AssertionError(f"the outbox message never got there: {doc}")


def body(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None and part.get_content_type() == f"text/{subtype}", message
    content: str = part.get_content()
    return content
