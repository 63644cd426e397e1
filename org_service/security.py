"""One password hasher and one token codec.

bcrypt is deliberately slow, so it always runs in worker threads: on the event loop one
login would stall every other request for the length of a hash. At most cores - 1 hashes
run at once, so a burst of logins cannot take the core the event loop needs. Password
checks (logins) go ahead of new-password hashes (creates, password changes), and at most
HASH_QUEUE_MAX of each kind wait: past that a request is told to come back (503) at once
instead of queueing ahead of every later one for ever longer.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import math
import os
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
import bcrypt
import jwt

from org_service.admission import outside_admission
from org_service.errors import ServiceUnavailable, Unauthorized

PASSWORD_MIN, PASSWORD_MAX = 8, 128
# bcrypt reads only 72 bytes. Pre-hashing (OWASP's advice) lets every password of up to 128
# characters count in full; the HMAC key separates these digests from plain SHA-256 ones
# leaked elsewhere ("password shucking").
_PREHASH_KEY = b"org_service/bcrypt-prehash/v1"


def _prehash(password: str) -> bytes:
    digest = hmac.new(_PREHASH_KEY, password.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest)


def _hashing_threads() -> int:
    # Hashes beyond cores - 1 would not finish sooner, only take the event loop's core:
    # with every core hashing, /health and every other request wait in the run queue.
    return max(1, (os.cpu_count() or 2) - 1)


class HashingBusy(ServiceUnavailable):
    """Too many password hashes are waiting: none was made for this request."""


class PasswordHasher:
    def __init__(self, rounds: int, queue_max: int | None = None) -> None:
        """`queue_max`: hashes of each kind that may wait for a thread (None: no bound)."""
        self.rounds = rounds
        self.queue_max = queue_max
        self.threads = _hashing_threads()
        self._running = 0
        # Waiting hashes, password checks (logins) first: someone is waiting to get in, and
        # their guesses are throttled; new passwords (public creates, password changes)
        # wait behind them, so a flood of creates cannot hold up a single login.
        self._waiting: dict[bool, deque[asyncio.Future[None]]] = {True: deque(),
                                                                   False: deque()}
        self._seconds_per_hash = 0.0  # the latest hash's own time, for Retry-After
        self._dummy_hash: bytes | None = None
        self._limiter: anyio.CapacityLimiter | None = None

    @property
    def in_flight(self) -> int:
        """Hashes running or waiting for a thread."""
        return self._running + sum(len(queue) for queue in self._waiting.values())

    def _hash(self, password: str) -> str:
        return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(self.rounds)).decode()

    def _timed(self, func: Any, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return func(*args)
        finally:
            self._seconds_per_hash = time.perf_counter() - started

    def refuse_if_busy(self, *, check: bool) -> None:
        """Raise HashingBusy now if a hash of this kind (`check`: a password check, else a
        new password) would be refused, so a request is turned away before any other work
        is done for it (the bound itself is kept when the hash is queued)."""
        if self._running >= self.threads and self._queue_full(check):
            raise self._busy()

    def _queue_full(self, check: bool) -> bool:
        return self.queue_max is not None and len(self._waiting[check]) >= self.queue_max

    def _busy(self) -> HashingBusy:
        # Come back once the hashes ahead have had time to finish.
        wait = self.in_flight / self.threads * self._seconds_per_hash
        return HashingBusy("Too many password checks in progress; retry shortly",
                           retry_after=math.ceil(wait))

    async def _take_thread(self, check: bool) -> None:
        if self._running < self.threads and not any(self._waiting.values()):
            self._running += 1
            return
        if self._queue_full(check):
            raise self._busy()
        queue = self._waiting[check]
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(future)
        try:
            await future  # the finishing hash hands its thread over (still counted running)
        except asyncio.CancelledError:
            if future.cancelled():
                with contextlib.suppress(ValueError):
                    queue.remove(future)
            else:  # handed a thread just as the request went away: pass it on
                self._give_back_thread()
            raise

    def _give_back_thread(self) -> None:
        for queue in self._waiting.values():  # password checks first
            while queue:
                future = queue.popleft()
                if not future.done():
                    future.set_result(None)
                    return
        self._running -= 1

    async def _in_thread(self, check: bool, func: Any, *args: Any) -> Any:
        if self._limiter is None:  # created lazily: it belongs to the running event loop
            self._limiter = anyio.CapacityLimiter(self.threads)
        # A hash holds a thread, not the database: the request's admission slot serves
        # others meanwhile, so a burst of logins cannot take every slot.
        async with outside_admission():
            await self._take_thread(check)
            try:
                return await anyio.to_thread.run_sync(self._timed, func, *args,
                                                      limiter=self._limiter)
            finally:
                self._give_back_thread()

    async def hash(self, password: str) -> str:
        hashed: str = await self._in_thread(False, self._hash, password)
        return hashed

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """Check a password; with no hash (unknown account), burn the same time and fail."""
        if self._dummy_hash is None:
            dummy: str = await self._in_thread(True, self._hash, "dummy password for timing")
            self._dummy_hash = dummy.encode()
        target = password_hash.encode() if password_hash else self._dummy_hash
        ok: bool = await self._in_thread(True, bcrypt.checkpw, _prehash(password), target)
        return ok and password_hash is not None


ALGORITHM = "HS256"
# `sid`: every access token belongs to a session (org_service/sessions), checked on every
# request, so ending a session ends its access tokens at once.
REQUIRED_CLAIMS = ["exp", "iat", "sub", "org", "ver", "sid"]
LEEWAY_SECONDS = 10


@dataclass(frozen=True, slots=True)
class TokenClaims:
    admin_id: str
    organization_id: str
    role: str
    version: int
    # When the admin's password was last checked (OIDC's `auth_time`): at the login that
    # began the session. None on tokens from before the claim existed.
    auth_time: datetime | None = None
    session_id: str = ""

    def authenticated_within(self, max_age: timedelta) -> bool:
        """Whether the password behind this token was checked at most `max_age` ago; a
        token without `auth_time` never counts as recent."""
        if self.auth_time is None:
            return False
        now = datetime.now(UTC)
        return now - max_age <= self.auth_time <= now + timedelta(seconds=LEEWAY_SECONDS)


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str
    expires_in: int  # seconds


class TokenCodec:
    def __init__(self, secret: str, expire_minutes: int) -> None:
        self._secret = secret
        self.expire = timedelta(minutes=expire_minutes)

    def issue(self, *, admin_id: str, organization_id: str, version: int, session_id: str,
              role: str = "org_admin", auth_time: datetime | None = None,
              issued_at: datetime | None = None, not_after: datetime | None = None,
              token_id: str | None = None) -> AccessToken:
        """A token for an admin whose password was checked at `auth_time` (None: just now).
        Anything that issues a token without a password check must pass the original time
        on. With `issued_at` and `token_id` given the token is the same on every call (HMAC
        signatures are deterministic): a refresh repeated within its grace window answers
        the very pair the first one did. It never outlives `not_after` (its session)."""
        now = issued_at or datetime.now(UTC)
        expires = now + self.expire
        if not_after is not None:
            expires = min(expires, not_after)
        issued, expiry = int(now.timestamp()), int(expires.timestamp())
        payload = {
            "sub": admin_id,
            "org": organization_id,
            "sid": session_id,
            "role": role,
            "ver": version,
            "iat": issued,
            "exp": expiry,
            "jti": token_id or uuid.uuid4().hex,
            "auth_time": int((auth_time or now).timestamp()),
        }
        return AccessToken(jwt.encode(payload, self._secret, algorithm=ALGORITHM),
                           max(0, expiry - issued))

    def decode(self, token: str) -> TokenClaims:
        try:
            # The algorithm is pinned: a token saying "none" or RS256 is refused outright.
            payload: dict[str, Any] = jwt.decode(
                token, self._secret, algorithms=[ALGORITHM], leeway=LEEWAY_SECONDS,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError:
            raise Unauthorized() from None
        sub, org, ver = payload.get("sub"), payload.get("org"), payload.get("ver")
        sid = payload.get("sid")
        if not (isinstance(sub, str) and isinstance(org, str) and type(ver) is int
                and isinstance(sid, str)):
            raise Unauthorized()
        try:
            _timestamp(payload["exp"])  # in range: a year 3 billion token is not a token
            auth_time = _timestamp(payload["auth_time"]) if "auth_time" in payload else None
        except (OverflowError, OSError, ValueError):  # an absurd but validly signed time
            raise Unauthorized() from None
        return TokenClaims(
            admin_id=sub,
            organization_id=org,
            role=str(payload.get("role", "org_admin")),
            version=ver,
            auth_time=auth_time,
            session_id=sid,
        )


def _timestamp(value: Any) -> datetime:
    # bool is an int to Python, not a time to anyone.
    if type(value) not in (int, float):
        raise ValueError("not a NumericDate")
    return datetime.fromtimestamp(value, UTC)
