"""Delivering the outbox: one background task per API process claims one message at a
time (a compare-and-set, so any number of processes may run one), checks its guard,
delivers it, and records how it went. Woken at once when this process queues a message;
otherwise it looks again when the next message falls due, and at least every
OUTBOX_POLL_SECONDS (another process may have queued one)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Literal, Protocol

import aiosmtplib
from pymongo.errors import PyMongoError

from org_service.config import Settings, SmtpTarget
from org_service.db import Document, utcnow
from org_service.outbox.messages import email_message
from org_service.outbox.repository import OutboxRepository

log = logging.getLogger(__name__)
ERROR_MAX = 500


class Undeliverable(Exception):
    """Retrying cannot help (the server refused every recipient): failed at once."""


class Transport(Protocol):
    async def send(self, message: Document) -> None: ...


class SmtpTransport:
    def __init__(self, target: SmtpTarget, sender: str, timeout: float) -> None:
        self.target = target
        self.sender = sender
        self.timeout = timeout

    async def send(self, message: Document) -> None:
        target = self.target
        try:
            await aiosmtplib.send(
                email_message(message, self.sender), hostname=target.hostname,
                port=target.port, username=target.username, password=target.password,
                use_tls=target.implicit_tls, start_tls=target.starttls,
                timeout=self.timeout)
        except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPRecipientRefused) as exc:
            raise Undeliverable(str(exc)) from exc


class LogTransport:
    """SMTP_URL unset (development): the message, link included, goes to the log."""

    async def send(self, message: Document) -> None:
        log.info("mail not sent (SMTP_URL is unset): %s to %s", message["kind"],
                 message["to"], extra={"mail_to": message["to"],
                                       "mail_subject": message["subject"],
                                       "mail_text": message["text"]})


def transport_for(settings: Settings) -> Transport:
    target = settings.smtp_target
    if target is None:
        return LogTransport()
    return SmtpTransport(target, settings.SMTP_FROM, settings.SMTP_TIMEOUT_SECONDS)


Verdict = Literal["send", "wait", "drop"]


def _error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text[:ERROR_MAX]


class OutboxSender:
    def __init__(self, repository: OutboxRepository, transport: Transport,
                 settings: Settings, clock: Callable[[], datetime] = utcnow) -> None:
        self.repository = repository
        self.transport = transport
        self.clock = clock
        self.poll = settings.OUTBOX_POLL_SECONDS
        self.lease = timedelta(seconds=settings.OUTBOX_LEASE_SECONDS)
        self.retry_base = settings.OUTBOX_RETRY_BASE_SECONDS
        self.retry_max = settings.OUTBOX_RETRY_MAX_SECONDS
        self.max_attempts = settings.OUTBOX_MAX_ATTEMPTS
        self.grace = timedelta(seconds=settings.outbox_guard_grace_seconds)
        self.stop_wait = settings.SMTP_TIMEOUT_SECONDS + 1
        # Which claims are this sender's: a takeover of a lease that ran out is another's.
        self.name = uuid.uuid4().hex
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-sender")

    async def stop(self) -> None:
        """Let a delivery under way finish (one SMTP conversation at most), then stop; a
        message still claimed is taken over by another sender when its lease runs out."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._task), self.stop_wait)
        if not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            # Cleared before looking, so a message queued while we look wakes the next wait.
            self._wake.clear()
            wait = self.poll
            try:
                while not self._stopping and await self.deliver_one():
                    pass
                due = await self.repository.next_due()
                if due is not None:
                    wait = min(wait, max(0.0, (due - self.clock()).total_seconds()))
            except PyMongoError as exc:
                log.warning("outbox: database unavailable (%s); retrying in %ss",
                            type(exc).__name__, self.poll)
            except Exception:
                # Whatever it was, the sender must outlive it: the next message may be fine.
                log.exception("outbox: unexpected error; retrying in %ss", self.poll)
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def deliver_one(self) -> bool:
        """Claim one message and settle it; False when none is due."""
        now = self.clock()
        message = await self.repository.claim(now, self.lease, self.name)
        if message is None:
            return False
        if message["attempts"] > self.max_attempts:
            # Only a message whose senders kept dying while sending it gets here.
            await self._give_up(message, message.get("last_error") or "sender lost")
            return True
        verdict, why = await self._check_guard(message, now)
        if verdict == "drop":
            await self.repository.dropped(message, why)
            log.info("outbox: dropped %s %s (%s)", message["kind"], message["_id"], why)
            return True
        if verdict == "wait":
            await self.repository.postpone(message, now + timedelta(seconds=self.retry_base),
                                           why)
            return True
        try:
            await self.transport.send(message)
        except Undeliverable as exc:
            await self._give_up(message, _error(exc))
        except Exception as exc:
            await self._failed_attempt(message, exc)
        else:
            if not await self.repository.sent(message):
                log.warning("outbox: %s %s was sent after its lease ran out (another sender "
                            "may send it too)", message["kind"], message["_id"])
        return True

    async def _check_guard(self, message: Document, now: datetime) -> tuple[Verdict, str]:
        guard: Document | None = message.get("guard")
        if guard is None:
            return "send", ""
        until: datetime | None = guard.get("until")
        if until is not None and until <= now:
            return "drop", "its guard expired"
        found = await self.repository.guarded(guard["collection"], guard["_id"])
        serial_field = guard.get("serial_field")
        not_yet = found is None or (
            serial_field is not None and found.get(serial_field, 0) < guard["serial"])
        if not_yet:
            if message["created_at"] + self.grace > now:
                return "wait", "its guard's document is not written yet"
            return "drop", "its guard's document never came (the request that queued it died)"
        assert found is not None
        if any(found.get(key) != value for key, value in guard["fields"].items()):
            return "drop", "its guard no longer holds"
        return "send", ""

    def backoff(self, attempts: int) -> float:
        """Seconds before the next attempt: exponential, capped, with jitter (half of it
        random, so senders that failed together do not retry together)."""
        delay = min(self.retry_max, self.retry_base * 2.0 ** min(attempts - 1, 60))
        return delay / 2 + random.uniform(0, delay / 2)

    async def _failed_attempt(self, message: Document, exc: Exception) -> None:
        error = _error(exc)
        if message["attempts"] >= self.max_attempts:
            await self._give_up(message, error)
            return
        delay = self.backoff(message["attempts"])
        log.warning("outbox: delivery of %s %s failed (attempt %d of %d), retrying in %.1fs: "
                    "%s", message["kind"], message["_id"], message["attempts"],
                    self.max_attempts, delay, error)
        await self.repository.retry_at(message, self.clock() + timedelta(seconds=delay), error)

    async def _give_up(self, message: Document, error: str) -> None:
        log.error("outbox: %s %s to %s failed for good after %d attempt(s): %s",
                  message["kind"], message["_id"], message["to"], message["attempts"], error)
        await self.repository.failed(message, error)
