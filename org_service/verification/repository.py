"""All MongoDB access for email verification links (`email_verifications` in the master
database).

One document per member (org_service/links.py `MemberLinks`): the live link, either for
the member's own email (`change` false) or for the address an email change waits on
(`change` true, `email` that address). A new request replaces it, so an older link dies.
`member_version` is the member's token version when the link was asked for: an email
change is written by compare-and-set on it (see org_service/verification/service.py)."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

from org_service.db import Document
from org_service.links import MemberLinks

COLLECTION = "email_verifications"


class EmailVerificationRepository(MemberLinks):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        super().__init__(db, COLLECTION)
