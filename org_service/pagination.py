"""One cursor format for every newest-first listing: an opaque token naming the last item seen.

The token is the URL-safe base64 of the item's ObjectId; clients must treat it as opaque so
the format can change without breaking them.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from bson import ObjectId
from fastapi import Query

from org_service.errors import Unprocessable

PAGE_MAX = 200
PageLimit = Annotated[int, Query(ge=1, le=PAGE_MAX, description=f"1-{PAGE_MAX} items")]
Cursor = Annotated[str | None, Query(
    max_length=64, description="The `next_cursor` of the previous page; omit for the newest")]


def encode_cursor(last_id: ObjectId) -> str:
    return base64.urlsafe_b64encode(last_id.binary).decode().rstrip("=")


def decode_cursor(cursor: str) -> ObjectId:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 12:
        raise Unprocessable("Invalid cursor: pass back the next_cursor of a previous page")
    return ObjectId(raw)
