"""Keys derived from the service secret, one per purpose.

`JWT_SECRET_KEY` signs tokens. Everything else that needs a key gets its own, derived with
HKDF-SHA256 (RFC 5869) under a label of its own, so that no two uses share key material:
a value MACed for one purpose (a pagination cursor, an idempotency fingerprint) can never
be passed off as, or help forge, a value of another (a token).

HKDF is written out here (a few lines of `hmac`) because the `cryptography` package is not a
dependency of the service.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

_HASH = hashlib.sha256
_HASH_BYTES = _HASH().digest_size
# The extract salt: fixed and public (RFC 5869 §3.1 allows that); it names the scheme.
_SALT = b"org_service key derivation v1"

CURSOR_LABEL = b"org_service/pagination-cursor/v1"
IDEMPOTENCY_FINGERPRINT_LABEL = b"org_service/idempotency-fingerprint/v1"
REFRESH_ROTATION_LABEL = b"org_service/refresh-rotation/v1"


def hkdf_sha256(secret: bytes, *, info: bytes, salt: bytes = b"", length: int = 32) -> bytes:
    """HKDF-SHA256 (RFC 5869): extract with `salt`, expand to `length` bytes for `info`."""
    if not 1 <= length <= 255 * _HASH_BYTES:
        raise ValueError(f"HKDF-SHA256 yields 1-{255 * _HASH_BYTES} bytes")
    prk = hmac.new(salt or bytes(_HASH_BYTES), secret, _HASH).digest()
    blocks, block = [], b""
    for counter in range(1, -(-length // _HASH_BYTES) + 1):
        block = hmac.new(prk, block + info + bytes([counter]), _HASH).digest()
        blocks.append(block)
    return b"".join(blocks)[:length]


@dataclass(frozen=True, slots=True)
class ServiceKeys:
    """The derived keys of one service secret."""

    cursor: bytes
    idempotency_fingerprint: bytes
    # Derives each refresh token of a session from the one it replaces (sessions/tokens.py).
    refresh_rotation: bytes

    @classmethod
    def from_secret(cls, secret: str | bytes) -> ServiceKeys:
        raw = secret.encode() if isinstance(secret, str) else secret
        return cls(
            cursor=hkdf_sha256(raw, salt=_SALT, info=CURSOR_LABEL),
            idempotency_fingerprint=hkdf_sha256(raw, salt=_SALT,
                                                info=IDEMPOTENCY_FINGERPRINT_LABEL),
            refresh_rotation=hkdf_sha256(raw, salt=_SALT, info=REFRESH_ROTATION_LABEL),
        )
