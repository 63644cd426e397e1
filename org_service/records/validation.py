"""The shape rules of record data: keys MongoDB can store and query safely, bounded depth,
bounded encoded size.

Keys starting with `$` would read as operators, `.` would split a key into a path, NUL
ends a BSON key early; a depth bound keeps every walk over the data (here, in the merge
patch, in the driver) far from Python's recursion limit.
"""

from __future__ import annotations

from typing import Any

import bson

from org_service.errors import InvalidInput, PayloadTooLarge
from org_service.openapi import component, ref
from org_service.strict_json import INT64_MAX, INT64_MIN

MAX_DEPTH = 20
MAX_PROBLEMS = 20
# key_problem below as a pattern: not empty, no `$` first, no `.` or NUL anywhere.
KEY_PATTERN = r"^[^$.\x00][^.\x00]*$"
# A dotted path into data: keys as above joined by dots (query.field_path).
FIELD_PATH_PATTERN = r"^[^$.\x00][^.\x00]*(\.[^$.\x00][^.\x00]*)*$"
# Integers are BSON int64 (the JSON parser refuses others); other numbers are held to the
# same range, because JSON Schema cannot tell 1e19 written as a float from an integer:
# -2^63 <= n < 2^63 is the one range a document can state for both.
NUMBER_MIN, NUMBER_LIMIT = INT64_MIN, INT64_MAX + 1

Loc = tuple[str | int, ...]


def problem(loc: Loc, msg: str, kind: str = "value_error") -> dict[str, Any]:
    return {"loc": list(loc), "msg": msg, "type": kind}


def invalid(*problems: dict[str, Any]) -> InvalidInput:
    """A 422 listing each problem, the same body as a schema violation."""
    return InvalidInput(list(problems))


def key_problem(key: object) -> str | None:
    if not isinstance(key, str):
        return "field names must be strings"
    if not key:
        return "field names must not be empty"
    if key.startswith("$"):
        return f"field name {key[:64]!r} must not start with '$'"
    if "." in key:
        return f"field name {key[:64]!r} must not contain '.'"
    if "\0" in key:
        return "field names must not contain NUL characters"
    return None


def shape_problems(value: Any, loc: Loc, *, depth: int = 1) -> list[dict[str, Any]]:
    """Every bad key and every nesting deeper than MAX_DEPTH under `value` (iterative, so
    no input can exhaust the stack)."""
    found: list[dict[str, Any]] = []
    stack: list[tuple[Any, Loc, int]] = [(value, loc, depth)]
    while stack and len(found) < MAX_PROBLEMS:
        current, where, level = stack.pop()
        if isinstance(current, float) and not NUMBER_MIN <= current < NUMBER_LIMIT:
            found.append(problem(where, "numbers must be at least -2^63 and below 2^63"))
            continue
        if not isinstance(current, dict | list):
            continue
        if level > MAX_DEPTH:
            found.append(problem(where, f"nesting deeper than {MAX_DEPTH} levels"))
            continue
        if isinstance(current, list):
            stack.extend((item, (*where, i), level + 1) for i, item in enumerate(current))
            continue
        for key, item in current.items():
            msg = key_problem(key)
            if msg:
                found.append(problem((*where, str(key)), msg))
            else:
                stack.append((item, (*where, key), level + 1))
    return sorted(found, key=lambda p: [str(part) for part in p["loc"]])


def check_shape(value: Any, loc: Loc) -> None:
    found = shape_problems(value, loc)
    if found:
        raise invalid(*found)


def size_problem(data: dict[str, Any], max_bytes: int, label: str) -> str | None:
    """None when `data` encodes within `max_bytes`, else a message naming the biggest field."""
    size = len(bson.encode(data))
    if size <= max_bytes:
        return None
    biggest = max(data, key=lambda k: len(bson.encode({k: data[k]})))
    return (f"{label} is {size} bytes as BSON, over the limit of {max_bytes} "
            f"(MAX_RECORD_BYTES); its largest field is {biggest[:64]!r}")


def check_size(data: dict[str, Any], max_bytes: int, label: str = "the record") -> None:
    msg = size_problem(data, max_bytes, label)
    if msg:
        raise PayloadTooLarge(msg)


# -- the same rules for the OpenAPI document ------------------------------------------------
# One schema without a `type`: each keyword binds only the values of its kind (keys and
# values of objects, items of arrays, numbers), at every level. Not a union of types: a
# generated client (openapi-python-client) drops every operation that reaches a union
# referring to itself, while it reads this as "any JSON value". The depth bound is left
# to the descriptions: as JSON Schema it is MAX_DEPTH copies, more blocks nested in a
# generated client than Python compiles.
RECORD_VALUE = component("RecordValue", {
    "propertyNames": {"pattern": KEY_PATTERN},
    "additionalProperties": ref("RecordValue"),
    "items": ref("RecordValue"),
    "minimum": NUMBER_MIN, "exclusiveMaximum": NUMBER_LIMIT,
    "description": "Any JSON value: object keys not empty, without `$` first or `.` or NUL "
                   "anywhere; numbers from -2^63 to below 2^63; nested at most "
                   f"{MAX_DEPTH} levels in all (422 past it)"})

# A record's data (and a patch, and member attributes): an object of such values.
RECORD_DATA_SCHEMA = {
    "type": "object", "propertyNames": {"pattern": KEY_PATTERN},
    "additionalProperties": RECORD_VALUE}
