"""Request bodies are parsed as strict JSON: UTF-8 only, finite numbers, 64-bit integers,
and only when they are declared JSON.

Python's json module accepts NaN, Infinity and 1e999 (which becomes inf), none of which
JSON or BSON can carry back out; rejecting them at parse time gives a clean 422 instead of
a failure while rendering an error or storing a record.

A body sent as anything but JSON (no Content-Type, text/plain, a form, multipart) reached
FastAPI's validation as raw bytes and came back 422 "Input should be a valid dictionary",
which tells the caller nothing about the real mistake: it is a 415 naming
`Content-Type: application/json` before anything (authentication included) runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from fastapi.utils import create_model_field

from org_service.errors import ErrorResponse, UnsupportedMediaType

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def loads(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError("body is not valid UTF-8", "", exc.start) from None

    def parse_float(literal: str) -> float:
        value = float(literal)
        if not math.isfinite(value):
            raise json.JSONDecodeError(f"number {literal[:40]} is out of range", text, 0)
        return value

    def parse_int(literal: str) -> int:
        try:
            value = int(literal)
        except ValueError:
            raise json.JSONDecodeError("integer is too long", text, 0) from None
        if not INT64_MIN <= value <= INT64_MAX:
            raise json.JSONDecodeError("integer does not fit in 64 bits", text, 0)
        return value

    def reject_constant(name: str) -> Any:
        raise json.JSONDecodeError(f"{name} is not valid JSON", text, 0)

    try:
        return json.loads(
            text, parse_float=parse_float, parse_int=parse_int, parse_constant=reject_constant
        )
    except RecursionError:
        raise json.JSONDecodeError("JSON is nested too deeply", "", 0) from None


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


def is_json_media_type(content_type: str) -> bool:
    """application/json or any application/*+json (RFC 6839, e.g. merge-patch+json), with
    any parameters: the types FastAPI itself parses as JSON, so the two never disagree."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    maintype, _, subtype = media_type.partition("/")
    return maintype == "application" and (subtype == "json" or subtype.endswith("+json"))


def refuse_unless_json(request: Request) -> None:
    content_type = request.headers.get("content-type", "").strip()
    if not content_type:  # absent, or sent empty: the same thing to a caller
        # No body at all is left to the schema (a required body is a 422 naming it); a body
        # is told apart by its framing headers, without reading it here.
        length = request.headers.get("content-length", "").strip()
        if length in ("", "0") and "transfer-encoding" not in request.headers:
            return
        raise UnsupportedMediaType(
            "The body has no Content-Type: send it as JSON, with Content-Type: "
            "application/json")
    if not is_json_media_type(content_type):
        sent = content_type.split(";", 1)[0].strip()[:80]
        raise UnsupportedMediaType(
            f"The body is sent as {sent!r}: send it as JSON, with Content-Type: "
            "application/json")


class StrictJSONRoute(APIRoute):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Whether a route takes a body is only known once FastAPI has read its signature,
        # so its 415 is documented here, by the same rule that answers it, the way
        # APIRoute documents a `responses=` entry (the model field is what OpenAPI shows).
        if self.body_field is not None:
            self.responses = {**self.responses, 415: {
                "model": ErrorResponse,
                "description": "The body is not sent as JSON (Content-Type: application/json "
                               "or application/*+json)"}}
            self.response_fields = {**self.response_fields, 415: create_model_field(
                name=f"Response_415_{self.unique_id}", type_=ErrorResponse,
                mode="serialization")}

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        takes_json = self.body_field is not None

        async def strict_handler(request: Request) -> Response:
            if takes_json:
                refuse_unless_json(request)
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict_handler
