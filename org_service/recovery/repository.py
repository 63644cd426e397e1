"""All MongoDB access for password resets (`password_resets` in the master database).

One document per member (org_service/links.py `MemberLinks`: a new request replaces the
token and moves `serial`, which the outbox guard follows). `member_version` is the
member's token version when the link was asked for: the password write is a
compare-and-set on it, which is what makes a link single-use (see
org_service/recovery/service.py)."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

from org_service.db import Document
from org_service.links import MemberLinks

COLLECTION = "password_resets"


class PasswordResetRepository(MemberLinks):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        super().__init__(db, COLLECTION)
