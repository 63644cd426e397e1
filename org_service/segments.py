"""Path segments that only match their own pattern, so a path is routed by what it can be.

`/org/records/{kind}/{record_id}` also matched `/org/records/tasks/bulk` (a record id
"bulk"), and `/invitations/{token}` matched `/invitations/accept`: a GET there was a 404
from the wrong route, and a 405 on such a path listed the other route's methods. A segment
registered here is a Starlette convertor built from the pattern its parameter type already
declares (one rule, stated once): `{record_id:objectid}` routes only 24 hex digits, and the
document still shows `{record_id}` with that pattern.
"""

from __future__ import annotations

import re

from starlette.convertors import Convertor, register_url_convertor


class _Pattern(Convertor[str]):
    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


def segment(name: str, pattern: str) -> str:
    """Register `name` as a path convertor matching `pattern` (anchored, as a parameter's
    pattern is written) and return the pattern, for the parameter type to declare."""
    body = pattern.removeprefix("^").removesuffix("$")
    re.compile(body)  # a bad pattern fails at import, not on the first request
    convertor = type(f"{name}_convertor", (_Pattern,), {"regex": body})()
    register_url_convertor(name, convertor)
    return pattern
