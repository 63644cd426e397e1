"""Request bodies are parsed as strict JSON: UTF-8 only, finite numbers, 64-bit integers.

Python's json module accepts NaN, Infinity and 1e999 (which becomes inf), none of which
JSON or BSON can carry back out; rejecting them at parse time gives a clean 422 instead of
a failure while rendering an error or storing a record.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

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


class StrictJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict_handler
