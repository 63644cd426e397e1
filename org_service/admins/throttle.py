"""Login throttling: too many failures for one email or from one address → 429.

The counters live in MongoDB, so every API process sees the same ones. A window starts with
its first failure and never grows: attempts refused with 429 are not counted, so nobody can
keep a victim locked out for longer than one window.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from org_service.admins.repository import LoginFailureRepository
from org_service.config import Settings
from org_service.db import Document, utcnow
from org_service.errors import TooManyRequests
from org_service.models import email_key


def _key(kind: str, value: str) -> str:
    # Hashed: the key stays short whatever was typed, and holds no email in clear.
    return f"{kind}:{hashlib.sha256(value.encode('utf-8', 'surrogatepass')).hexdigest()}"


@dataclass(frozen=True, slots=True)
class LoginKeys:
    account: str
    address: str


class LoginThrottle:
    def __init__(self, repository: LoginFailureRepository, settings: Settings) -> None:
        self.repository = repository
        self.window = timedelta(seconds=settings.LOGIN_WINDOW_SECONDS)
        self.limits = {"email": settings.LOGIN_MAX_FAILURES_PER_EMAIL,
                       "address": settings.LOGIN_MAX_FAILURES_PER_ADDRESS}

    @staticmethod
    def keys(email: str, client_address: str | None) -> LoginKeys:
        return LoginKeys(account=_key("email", email_key(email)),
                         address=_key("address", client_address or "unknown"))

    def _raise_if_over(self, counters: list[Document], now: datetime, *, counted: bool
                       ) -> None:
        # Before this attempt is counted the limit itself blocks; after, only going past it.
        allowed = 0 if counted else 1
        waits = [(doc["expires_at"] - now).total_seconds() for doc in counters
                 if doc["failures"] + allowed > self.limits[doc["_id"].split(":", 1)[0]]]
        if waits:
            raise TooManyRequests("Too many failed logins; retry later",
                                  retry_after=math.ceil(max(waits)))

    async def check(self, keys: LoginKeys) -> None:
        """Raise 429 (with Retry-After: the seconds left in the window) while throttled."""
        now = utcnow()
        counters = await self.repository.active([keys.account, keys.address], now)
        self._raise_if_over(counters, now, counted=False)

    async def reserve(self, keys: LoginKeys) -> None:
        """Count this attempt as a failure before the password is checked, so concurrent
        guesses cannot slip past the limit between a check and a count; the attempt that
        goes over the limit is refused (429) without a password check."""
        now = utcnow()
        counters = [await self.repository.add_failure(key, now, self.window)
                    for key in (keys.account, keys.address)]
        self._raise_if_over(counters, now, counted=True)

    async def succeeded(self, keys: LoginKeys) -> None:
        # The account is forgiven; the address only gets back this attempt, so one good
        # password cannot clear a spraying address.
        await self.repository.clear(keys.account)
        await self.repository.refund(keys.address)
