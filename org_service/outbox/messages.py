"""What the outbox carries: a message, the guard that may stop it, and the queue's write
side (`Outbox`), which the services call in the same logical step as the change the
message tells about."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid, parseaddr

from bson import ObjectId

from org_service.db import Document
from org_service.outbox.repository import OutboxRepository


@dataclass(frozen=True, slots=True)
class Guard:
    """Send only while the document `_id` of `collection` still has `fields`, and not
    after `until`. The message is written before the document it guards is (or before it
    changes to match), so a document that has not reached `serial_field >= serial` yet is
    not there *yet*: the sender waits for it a while (the grace period) before giving up."""

    collection: str
    id: ObjectId
    fields: Document
    serial_field: str | None = None
    serial: int = 0
    until: datetime | None = None

    def to_document(self) -> Document:
        return {"collection": self.collection, "_id": self.id, "fields": self.fields,
                "serial_field": self.serial_field, "serial": self.serial,
                "until": self.until}

@dataclass(frozen=True, slots=True)
class Message:
    to: str
    subject: str
    text: str
    html: str
    kind: str  # what it is about ("invitation", later "password_reset"...): for operators
    organization_id: ObjectId | None = None
    guard: Guard | None = None
    id: ObjectId = field(default_factory=ObjectId)

def one_line(value: str) -> str:
    """A header value cannot hold a line break (it would start another header)."""
    return " ".join(value.split())

def email_message(doc: Document, sender: str) -> EmailMessage:
    """The queued message as mail: plain text with an HTML alternative."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = doc["to"]
    mail["Subject"] = one_line(doc["subject"])
    # The queue's id: a retried delivery that did arrive the first time is recognisable.
    # (Its domain given: without one, make_msgid asks DNS for this host's name, blocking.)
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    mail["Message-ID"] = make_msgid(idstring=str(doc["_id"]), domain=domain)
    mail.set_content(doc["text"])
    mail.add_alternative(doc["html"], subtype="html")
    return mail

class Outbox:
    """Queues messages for the sender. `notify` wakes this process's sender; call it once
    everything the message's guard waits for is written."""

    def __init__(self, repository: OutboxRepository, wake: Callable[[], None]) -> None:
        self.repository = repository
        self._wake = wake

    async def enqueue(self, message: Message) -> None:
        await self.repository.insert({
            "_id": message.id,
            "to": message.to,
            "subject": message.subject,
            "text": message.text,
            "html": message.html,
            "kind": message.kind,
            "organization_id": message.organization_id,
            "guard": message.guard.to_document() if message.guard else None,
        })

    async def discard(self, message_id: ObjectId) -> None:
        """A queued message whose change did not happen after all (best effort: if this
        fails, the sender drops it once its guard's grace period is over)."""
        await self.repository.drop_queued(message_id, "its change did not happen")

    def notify(self) -> None:
        self._wake()
