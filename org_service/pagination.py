"""Keyset (cursor) pagination: the one pagination helper of the service.

A page starts after the sort key of the last item already seen, never at an offset, so
inserts and deletes elsewhere in the collection cannot shift it: no item is repeated or
skipped. The sort key must end in a unique field (normally `_id`).

The cursor is opaque to clients: base64url(BSON of the key values + a truncated HMAC). The
MAC covers a *scope* string chosen by the caller (tenant, resource, sort order), so a cursor
that was altered, forged or taken from another listing is refused instead of silently
paging somewhere else. Its form (CURSOR_PATTERN) is in the document, and a cursor of
another form is a 422; one of that form this listing never issued names no page: 404, as
an id that names nothing does (the MAC is a rule no schema can state).

The helper never touches MongoDB: it builds the filter, sort and limit for a repository to
run, then turns the fetched documents into a page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import bson
from bson.codec_options import CodecOptions
from bson.errors import BSONError
from fastapi import Query
from pydantic import StringConstraints

from org_service.db import Document
from org_service.errors import NotFound, Unprocessable

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_MAC_BYTES = 16
_MAX_CURSOR_CHARS = 2048
CURSOR_PATTERN = rf"^[A-Za-z0-9_-]{{1,{_MAX_CURSOR_CHARS}}}$"
# A cursor as a request names it (a query parameter or a body field).
CursorText = Annotated[str, StringConstraints(pattern=CURSOR_PATTERN)]
After = Annotated[CursorText | None, Query(description="The `next` of the previous page")]
_CODEC: CodecOptions[Document] = CodecOptions(tz_aware=True)


@dataclass(frozen=True, slots=True)
class SortOrder:
    """Document fields to sort by (the last one unique) and one direction for all."""

    fields: tuple[str, ...]
    direction: int = 1  # 1 ascending, -1 descending

    @property
    def sort(self) -> list[tuple[str, int]]:
        return [(field, self.direction) for field in self.fields]

    def key_of(self, document: Document) -> list[Any]:
        return [document.get(field) for field in self.fields]

    def after(self, values: Sequence[Any]) -> Document:
        """Documents strictly after `values` in this order:
        (f1 > v1) or (f1 = v1 and f2 > v2) or ..."""
        op = "$gt" if self.direction == 1 else "$lt"
        branches: list[Document] = []
        for i, field in enumerate(self.fields):
            branch: Document = {self.fields[j]: values[j] for j in range(i)}
            branch[field] = {op: values[i]}
            branches.append(branch)
        return branches[0] if len(branches) == 1 else {"$or": branches}


class CursorCodec:
    """Signs and checks cursors with a key of their own (see org_service.keys: derived from
    the service secret, never the secret itself)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("a cursor key has at least 32 bytes")
        self._key = key

    def _mac(self, scope: str, payload: bytes) -> bytes:
        return hmac.new(self._key, scope.encode() + b"\0" + payload,
                        hashlib.sha256).digest()[:_MAC_BYTES]

    def encode(self, scope: str, values: Sequence[Any]) -> str:
        payload = bson.encode({"v": list(values)})
        raw = payload + self._mac(scope, payload)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def decode(self, scope: str, token: str, arity: int) -> list[Any]:
        if not re.fullmatch(CURSOR_PATTERN, token):
            raise Unprocessable(
                "Invalid cursor in 'after': pass back the 'next' value of the previous page "
                "of this same listing, unchanged")
        invalid = NotFound(
            "No page of this listing at the cursor in 'after': pass back the 'next' value "
            "of the previous page of this same listing, unchanged")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise invalid from None
        payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if len(raw) <= _MAC_BYTES or not hmac.compare_digest(mac, self._mac(scope, payload)):
            raise invalid
        try:
            values = bson.decode(payload, codec_options=_CODEC).get("v")
        except (BSONError, ValueError):
            raise invalid from None
        if not isinstance(values, list) or len(values) != arity:
            raise invalid
        return values


class Pager:
    """One page request: what to ask the database, and how to shape what it returned."""

    def __init__(self, codec: CursorCodec, order: SortOrder, *, scope: str,
                 limit: int = DEFAULT_LIMIT, after: str | None = None) -> None:
        if not 1 <= limit <= MAX_LIMIT:
            raise Unprocessable(f"'limit' must be between 1 and {MAX_LIMIT}")
        self.codec = codec
        self.order = order
        self.scope = scope
        self.limit = limit
        self._after = (codec.decode(scope, after, len(order.fields))
                       if after is not None else None)

    def filter(self, base: Document) -> Document:
        """`base` narrowed to the documents after the cursor."""
        if self._after is None:
            return base
        condition = self.order.after(self._after)
        return {"$and": [base, condition]} if base else condition

    @property
    def sort(self) -> list[tuple[str, int]]:
        return self.order.sort

    @property
    def fetch_limit(self) -> int:
        # One more than the page: its presence says whether a next page exists.
        return self.limit + 1

    def page(self, documents: list[Document], *, cut: bool = False
             ) -> tuple[list[Document], str | None]:
        """The page and the cursor of the next one; `cut`: the database read stopped early
        (the response budget), so there is more after the last document."""
        items = documents[: self.limit]
        if (len(documents) <= self.limit and not cut) or not items:
            return items, None
        return items, self.codec.encode(self.scope, self.order.key_of(items[-1]))
