"""Attempt throttling: failed logins, public creates, invalid invitation links → 429 with
Retry-After.

The counters live in MongoDB, so every API process sees the same ones. A window starts with
its first attempt and never grows: attempts refused with 429 are not counted, so nobody can
keep a victim locked out for longer than one window.

Failed logins are counted three ways. The tight limit is per email *and* client address, so
a stranger guessing from elsewhere cannot lock the owner out; per address, so one address
cannot spray many emails; and per email from anywhere, a much higher ceiling against an
attack spread over many addresses, before which each failure past a soft threshold makes
the next attempt for that email wait twice as long (capped): a slowdown of seconds for the
owner, not a lockout.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from org_service.auth.repository import LoginFailureRepository, last_attempt
from org_service.config import OperatorSettings
from org_service.db import Document, utcnow
from org_service.errors import TooManyRequests
from org_service.models import email_key

# 2**62 s is past any window: the exponent stops growing there instead of overflowing.
_MAX_DOUBLINGS = 62


def _key(kind: str, *values: str) -> str:
    # Hashed: the key stays short whatever was typed, and holds no email in clear. NUL
    # separates the parts: it is in no email and no address.
    joined = "\0".join(values)
    return f"{kind}:{hashlib.sha256(joined.encode('utf-8', 'surrogatepass')).hexdigest()}"


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `attempts` per window for one key; with `slowdown_after`, once that many are
    counted each attempt must also come 2**(counted - slowdown_after) seconds (at most
    `slowdown_max`) after the one before."""

    attempts: int
    slowdown_after: int | None = None
    slowdown_max: float = 0

    def wait(self, counter: Document, counted: int, last_at: datetime | None,
             now: datetime) -> float:
        """Seconds an attempt must wait, given `counted` attempts before it (≤ 0: none)."""
        if counted >= self.attempts:
            expires_at: datetime = counter["expires_at"]
            return (expires_at - now).total_seconds()
        if self.slowdown_after is None or counted < self.slowdown_after or last_at is None:
            return 0
        doublings = min(counted - self.slowdown_after, _MAX_DOUBLINGS)
        return min(self.slowdown_max, 2.0 ** doublings) - (now - last_at).total_seconds()


class AttemptCounter:
    """Attempts per key within a window, each kind of key (the part before `:`) with its
    own `Limit`; shared by every API process through `LoginFailureRepository`."""

    def __init__(self, repository: LoginFailureRepository, *, window_seconds: int,
                 limits: dict[str, Limit], refusal: str) -> None:
        self.repository = repository
        self.window = timedelta(seconds=window_seconds)
        self.limits = limits
        self.refusal = refusal

    def _raise_if_waiting(self, waits: list[float]) -> None:
        if waits and max(waits) > 0:
            raise TooManyRequests(self.refusal, retry_after=math.ceil(max(waits)))

    def _limit(self, counter: Document) -> Limit:
        return self.limits[counter["_id"].split(":", 1)[0]]

    async def check(self, keys: Sequence[str]) -> None:
        """Raise 429 (Retry-After: the seconds to wait) while any key must wait."""
        now = utcnow()
        counters = await self.repository.active(list(keys), now)
        self._raise_if_waiting([
            self._limit(counter).wait(counter, counter["failures"], last_attempt(counter), now)
            for counter in counters])

    async def reserve(self, keys: Sequence[str],
                      about: Mapping[str, Document] | None = None) -> None:
        """Count this attempt before the costly work, so concurrent attempts cannot slip
        past a limit between a check and a count: each one sees the attempts counted before
        it, and one that had to wait is refused (429) without the work. `about`: per key,
        whom a new counter counts, so an operator can clear it (`clear_throttling`)."""
        now = utcnow()
        about = about or {}
        counters = [await self.repository.add_failure(key, now, self.window, about.get(key))
                    for key in keys]
        self._raise_if_waiting([
            self._limit(counter).wait(counter, counter["failures"] - 1,
                                      counter["previous_at"], now)
            for counter in counters])

    async def refund(self, keys: Sequence[str]) -> None:
        for key in keys:
            await self.repository.refund(key)

    async def clear(self, key: str) -> None:
        await self.repository.clear(key)


@dataclass(frozen=True, slots=True)
class LoginKeys:
    pair: str  # this email from this address
    address: str
    account: str  # this email from anywhere
    client_address: str

    def all(self) -> tuple[str, str, str]:
        return self.pair, self.address, self.account

    def about(self) -> dict[str, Document]:
        # The address in clear (the audit trail keeps it too); the email only as the key
        # of its own counter, so the collection still holds no email in clear.
        return {self.pair: {"address": self.client_address, "email": self.account},
                self.address: {"address": self.client_address},
                self.account: {"email": self.account}}


class LoginThrottle:
    def __init__(self, repository: LoginFailureRepository, settings: OperatorSettings) -> None:
        self.counter = AttemptCounter(
            repository, window_seconds=settings.LOGIN_WINDOW_SECONDS,
            refusal="Too many failed logins; retry later",
            limits={
                "pair": Limit(settings.LOGIN_MAX_FAILURES_PER_EMAIL),
                "address": Limit(settings.LOGIN_MAX_FAILURES_PER_ADDRESS),
                "email": Limit(settings.LOGIN_EMAIL_CEILING,
                               slowdown_after=settings.LOGIN_EMAIL_SLOWDOWN_AFTER,
                               slowdown_max=settings.LOGIN_EMAIL_SLOWDOWN_MAX_SECONDS),
            })

    @staticmethod
    def keys(email: str, client_address: str | None) -> LoginKeys:
        account, address = email_key(email), client_address or "unknown"
        return LoginKeys(pair=_key("pair", account, address), address=_key("address", address),
                         account=_key("email", account), client_address=address)

    async def check(self, keys: LoginKeys) -> None:
        """Raise 429 (with Retry-After) while this email or address is throttled."""
        await self.counter.check(keys.all())

    async def reserve(self, keys: LoginKeys) -> None:
        """Count the attempt as a failure before the password is checked; the attempt that
        goes past a limit is refused (429) without a password check."""
        await self.counter.reserve(keys.all(), keys.about())

    async def refund(self, keys: LoginKeys) -> None:
        """Take back a reserved attempt whose password was never checked (e.g. 503)."""
        await self.counter.refund(keys.all())

    async def succeeded(self, keys: LoginKeys) -> None:
        # This email from this address is forgiven. The address and the email from anywhere
        # only get back this attempt: one good password clears neither a spraying address
        # nor the guesses of strangers elsewhere.
        await self.counter.clear(keys.pair)
        await self.counter.refund((keys.address, keys.account))


class AddressThrottle:
    """Attempts of one kind per client address within a window; past the limit, 429."""

    kind: str
    refusal: str

    def __init__(self, repository: LoginFailureRepository, *, limit: int,
                 window_seconds: int) -> None:
        self.counter = AttemptCounter(repository, window_seconds=window_seconds,
                                      refusal=self.refusal, limits={self.kind: Limit(limit)})

    @classmethod
    def key(cls, client_address: str | None) -> str:
        return _key(cls.kind, client_address or "unknown")

    async def check(self, client_address: str | None) -> None:
        await self.counter.check([self.key(client_address)])

    async def count(self, client_address: str | None) -> str:
        """Count an attempt of this address (429 when it was one too many); its key."""
        key = self.key(client_address)
        await self.counter.reserve([key], {key: {"address": client_address or "unknown"}})
        return key


class CreateThrottle(AddressThrottle):
    """Public creates per client address: each costs a password hash, 409s included."""

    kind = "create"
    refusal = "Too many organizations created from this address; retry later"

    def __init__(self, repository: LoginFailureRepository, settings: OperatorSettings) -> None:
        super().__init__(repository, limit=settings.CREATE_MAX_PER_ADDRESS,
                         window_seconds=settings.CREATE_WINDOW_SECONDS)

    async def admit(self, client_address: str | None) -> str:
        """Count a create from this address, or raise 429; the key, for `refund`."""
        await self.check(client_address)
        return await self.count(client_address)

    async def refund(self, key: str) -> None:
        await self.counter.refund([key])


class InvitationThrottle(AddressThrottle):
    """Invitation links that lead nowhere (unknown, revoked, used, expired), per client
    address, with the limit and window of failed logins per address."""

    kind = "invite"
    refusal = "Too many invalid invitation links from this address; retry later"

    def __init__(self, repository: LoginFailureRepository, settings: OperatorSettings) -> None:
        super().__init__(repository, limit=settings.LOGIN_MAX_FAILURES_PER_ADDRESS,
                         window_seconds=settings.LOGIN_WINDOW_SECONDS)

    async def failed(self, client_address: str | None) -> None:
        """Count a failure of this address (429 when it was one too many)."""
        await self.count(client_address)


class LinkThrottle:
    """Requests for an emailed link, counted whatever they find, per client address and
    per email from anywhere; links that lead nowhere count against the address too. Both
    counters record whom they count as the login counters do, so `org-service throttle
    clear --address/--email` clears them with the rest. Each kind of link has counters of
    its own (`address_kind`, `email_kind`), with the limits of password resets."""

    address_kind: str
    email_kind: str
    refusal: str

    def __init__(self, repository: LoginFailureRepository, settings: OperatorSettings) -> None:
        self.counter = AttemptCounter(
            repository, window_seconds=settings.PASSWORD_RESET_WINDOW_SECONDS,
            refusal=self.refusal,
            limits={self.address_kind: Limit(settings.PASSWORD_RESET_MAX_PER_ADDRESS),
                    self.email_kind: Limit(settings.PASSWORD_RESET_MAX_PER_EMAIL)})

    @classmethod
    def address_key(cls, client_address: str | None) -> str:
        return _key(cls.address_kind, client_address or "unknown")

    @classmethod
    def account_key(cls, email: str) -> str:
        return _key(cls.email_kind, email_key(email))

    async def request(self, email: str, client_address: str | None) -> None:
        """Count a request of this email from this address (429 past either limit)."""
        address, account = client_address or "unknown", self.account_key(email)
        # The email's "about" is its login counter's key: the one an operator's
        # `--email` matches (no email in clear here either).
        login_account = _key("email", email_key(email))
        await self.counter.reserve(
            [self.address_key(address), account],
            {self.address_key(address): {"address": address},
             account: {"email": login_account}})

    async def check(self, client_address: str | None) -> None:
        await self.counter.check([self.address_key(client_address)])

    async def failed(self, client_address: str | None) -> None:
        """A link that led nowhere (429 when it was one too many)."""
        key = self.address_key(client_address)
        await self.counter.reserve([key], {key: {"address": client_address or "unknown"}})


class ResetThrottle(LinkThrottle):
    """Password reset requests (`reset`, `reset_email`) and dead reset links."""

    address_kind, email_kind = "reset", "reset_email"
    refusal = "Too many password reset requests; retry later"


class VerificationThrottle(LinkThrottle):
    """Requests for an email verification link (`verify`, `verify_email`: the public
    resend and the member's own) and dead verification links."""

    address_kind, email_kind = "verify", "verify_email"
    refusal = "Too many email verification requests or invalid links; retry later"


@dataclass(frozen=True, slots=True)
class ThrottleEntry:
    """One live counter, as an operator sees it."""

    # pair (an email from an address), address, email (from anywhere), create, invite,
    # reset (reset requests and dead reset links of an address), reset_email, verify and
    # verify_email (the same for email verification links)
    kind: str
    address: str | None
    email_key: str | None  # the email's hashed key: emails are not kept in clear
    attempts: int
    limit: int
    until: datetime

    @property
    def throttled(self) -> bool:
        return self.attempts >= self.limit


class ThrottleAdmin:
    """What an operator does to the counters of every throttle (org_service/cli.py)."""

    def __init__(self, repository: LoginFailureRepository, settings: OperatorSettings) -> None:
        self.repository = repository
        self.limits = {**LoginThrottle(repository, settings).counter.limits,
                       **CreateThrottle(repository, settings).counter.limits,
                       **InvitationThrottle(repository, settings).counter.limits,
                       **ResetThrottle(repository, settings).counter.limits,
                       **VerificationThrottle(repository, settings).counter.limits}

    async def clear(self, *, address: str | None = None, email: str | None = None) -> int:
        """Forget every live counter about this client address (its failed logins, for any
        email, its creates, its invalid invitation links, its reset and verification
        requests) and/or this email (from any address: its failed logins, its reset and
        verification requests); how many."""
        keys: list[str] = []
        account = None
        if address is not None:
            keys += [_key("address", address), CreateThrottle.key(address),
                     InvitationThrottle.key(address), ResetThrottle.address_key(address),
                     VerificationThrottle.address_key(address)]
        if email is not None:
            account = _key("email", email_key(email))
            keys += [account, ResetThrottle.account_key(email),
                     VerificationThrottle.account_key(email)]
        if address is not None and email is not None:
            # Counters from before they recorded whom they count: only their keys match.
            keys.append(LoginThrottle.keys(email, address).pair)
        return await self.repository.clear_about(keys, utcnow(), address=address,
                                                 email=account)

    async def entries(self) -> list[ThrottleEntry]:
        """Every live counter, the soonest to end first."""
        found = []
        for counter in await self.repository.all_active(utcnow()):
            kind = counter["_id"].split(":", 1)[0]
            limit = self.limits.get(kind)
            if limit is None:
                continue
            email = counter.get("email") or (counter["_id"] if kind == "email" else None)
            found.append(ThrottleEntry(
                kind=kind, address=counter.get("address"), email_key=email,
                attempts=counter["failures"], limit=limit.attempts,
                until=counter["expires_at"]))
        return found
