"""One password hasher and one token codec.

bcrypt is deliberately slow, so it always runs in worker threads: on the event loop one
login would stall every other request for the length of a hash. At most cores - 1 hashes
run at once, so a burst of logins cannot take the core the event loop needs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
import bcrypt
import jwt

from org_service.errors import Unauthorized

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


class PasswordHasher:
    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        self._dummy_hash: bytes | None = None
        self._limiter: anyio.CapacityLimiter | None = None

    def _hash(self, password: str) -> str:
        return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(self.rounds)).decode()

    async def _in_thread(self, func: Any, *args: Any) -> Any:
        if self._limiter is None:  # created lazily: it belongs to the running event loop
            self._limiter = anyio.CapacityLimiter(_hashing_threads())
        return await anyio.to_thread.run_sync(func, *args, limiter=self._limiter)

    async def hash(self, password: str) -> str:
        hashed: str = await self._in_thread(self._hash, password)
        return hashed

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """Check a password; with no hash (unknown account), burn the same time and fail."""
        if self._dummy_hash is None:
            self._dummy_hash = (await self.hash("dummy password for timing")).encode()
        target = password_hash.encode() if password_hash else self._dummy_hash
        ok: bool = await self._in_thread(bcrypt.checkpw, _prehash(password), target)
        return ok and password_hash is not None


ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "sub", "org", "ver"]
LEEWAY_SECONDS = 10


@dataclass(frozen=True, slots=True)
class TokenClaims:
    admin_id: str
    organization_id: str
    role: str
    version: int
    token_id: str
    expires_at: datetime


class TokenCodec:
    def __init__(self, secret: str, expire_minutes: int) -> None:
        self._secret = secret
        self.expire = timedelta(minutes=expire_minutes)

    def issue(self, *, admin_id: str, organization_id: str, version: int,
              role: str = "org_admin") -> str:
        now = datetime.now(UTC)
        payload = {
            "sub": admin_id,
            "org": organization_id,
            "role": role,
            "ver": version,
            "iat": now,
            "exp": now + self.expire,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM)

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
        if not (isinstance(sub, str) and isinstance(org, str) and type(ver) is int):
            raise Unauthorized()
        try:
            expires_at = datetime.fromtimestamp(payload["exp"], UTC)
        except (OverflowError, OSError, ValueError):  # an absurd but validly signed exp
            raise Unauthorized() from None
        return TokenClaims(
            admin_id=sub,
            organization_id=org,
            role=str(payload.get("role", "org_admin")),
            version=ver,
            token_id=str(payload.get("jti", "")),
            expires_at=expires_at,
        )
