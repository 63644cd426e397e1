"""The single-use tokens of emailed links (invitations, password resets): 256 bits from
`secrets`, of which only the SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets
from typing import Annotated

from pydantic import StringConstraints

from org_service.segments import segment

TOKEN_BYTES = 32  # 256 bits
# secrets.token_urlsafe(32): 43 characters of the URL-safe base64 alphabet.
# Routed by this pattern too: `/invitations/accept` is never a token "accept".
LINK_TOKEN_PATTERN = segment("linktoken", r"^[A-Za-z0-9_-]{43}$")
LinkToken = Annotated[str, StringConstraints(pattern=LINK_TOKEN_PATTERN)]


def token_hash(token: str) -> str:
    """What is stored of a token: its SHA-256. A 256-bit random token needs no salt or
    slow hash: nobody can guess one to check against a leaked digest."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh token and its hash."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, token_hash(token)
