"""Why a lifecycle step (create, rename, delete, an index change) refused to act.

Domain exceptions: they say what the database showed, nothing about HTTP.
`org_service/errors.py` gives each its answer."""

from __future__ import annotations

from typing import Any


class LifecycleError(Exception):
    """Base of the lifecycle's refusals."""


class NameTaken(LifecycleError):
    """The slug belongs to another organization (or is still being released)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class Busy(LifecycleError):
    """Another lifecycle operation of this organization is in flight."""


class Stale(LifecycleError):
    """The organization is no longer what the request named (renamed or deleted since)."""


class CollectionTaken(LifecycleError):
    """A collection of the wanted name exists already and belongs to no operation of ours."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class Inconsistent(LifecycleError):
    """What the database says contradicts the journal (say, the organization's collection
    is missing): the operation stops and changes nothing rather than paper over it."""


class LeaseLost(LifecycleError):
    """The operation was taken over (its lease ran out): its former holder must stop."""

    def __init__(self, op_id: Any) -> None:
        super().__init__(op_id)


class NotParked(LifecycleError):
    """No deleted organization of this id is waiting in its restore window (never deleted,
    purged, restored, or taken by a purge or restore running now)."""

    def __init__(self, organization_id: Any, why: str = "") -> None:
        super().__init__(organization_id)
        self.organization_id = organization_id
        self.why = why


class EmailsTaken(LifecycleError):
    """Members of the organization to restore have emails that belong to other members now."""

    def __init__(self, emails: list[str]) -> None:
        super().__init__(emails)
        self.emails = emails
