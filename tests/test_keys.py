"""Keys derived from the service secret: HKDF as RFC 5869 defines it, one key per purpose,
and the app signs with the derived keys, never with the raw secret."""

from __future__ import annotations

import base64
from typing import Any

import bson
import httpx
import pytest

from org_service.keys import ServiceKeys, hkdf_sha256
from org_service.pagination import CursorCodec
from tests.helpers import create_org

# RFC 5869, appendix A: test cases 1 (salt and info) and 3 (neither), SHA-256, 42 bytes.
RFC_5869_CASES = [
    (bytes([0x0B] * 22), bytes(range(0x0D)), bytes(range(0xF0, 0xFA)),
     "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
     "34007208d5b887185865"),
    (bytes([0x0B] * 22), b"", b"",
     "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
     "9d201395faa4b61a96c8"),
]


@pytest.mark.parametrize(("ikm", "salt", "info", "okm"), RFC_5869_CASES)
def test_hkdf_matches_the_rfc_5869_test_vectors(ikm: bytes, salt: bytes, info: bytes,
                                                okm: str) -> None:
    assert hkdf_sha256(ikm, salt=salt, info=info, length=42).hex() == okm


def test_each_purpose_gets_its_own_key_and_none_is_the_secret() -> None:
    secret = "s" * 48
    keys = ServiceKeys.from_secret(secret)
    assert len(keys.cursor) == len(keys.idempotency_fingerprint) == 32
    assert keys.cursor != keys.idempotency_fingerprint
    assert secret.encode() not in (keys.cursor, keys.idempotency_fingerprint)
    assert ServiceKeys.from_secret(secret) == keys  # stable across restarts and processes
    assert ServiceKeys.from_secret("t" * 48).cursor != keys.cursor


def _resigned(cursor: str, codec: CursorCodec, scope: str) -> str:
    """The same cursor values, signed by `codec` instead."""
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    values = bson.decode(raw[:-16])["v"]  # BSON payload, then a 16-byte MAC
    return codec.encode(scope, values)


async def test_a_cursor_signed_with_the_raw_secret_is_refused(
        client: httpx.AsyncClient, settings: Any) -> None:
    org = await create_org(client, "Acme")
    await client.get("/admin/me", headers=org.auth)
    first = await client.get("/org/audit", params={"limit": 1}, headers=org.auth)
    assert first.status_code == 200, first.text
    cursor = first.json()["next_cursor"]
    assert cursor, "the trail should hold more than one entry"

    # The genuine cursor still pages on.
    following = await client.get("/org/audit", params={"limit": 1, "before": cursor},
                                 headers=org.auth)
    assert following.status_code == 200, following.text

    raw_secret = settings.JWT_SECRET_KEY.get_secret_value().encode()
    forged = _resigned(cursor, CursorCodec(raw_secret), f"audit:{org.id}")
    refused = await client.get("/org/audit", params={"limit": 1, "before": forged},
                               headers=org.auth)
    assert refused.status_code == 404, refused.text  # it names no page of this trail
    assert "cursor" in refused.json()["detail"]
