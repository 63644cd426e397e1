"""The record filter language: a safe subset of MongoDB's query language.

Field names are paths into a record's `data` (`"address.city"` -> `data.address.city`);
the only operators are $eq $ne $gt $gte $lt $lte $in $nin $exists $and $or $not, plus
$regex restricted to a *literal prefix* (`^` followed by plain or backslash-escaped
characters, at most MAX_REGEX_CHARS): it can never backtrack, and an index on the field
can serve it. Everything else ($where, $expr, $function, $lookup, $text, ...) is refused
with a 422 naming where it was found. The result is a new document built only from what
was checked, never the client's object passed through.
"""

from __future__ import annotations

from typing import Any

from org_service.db import Document
from org_service.openapi import component, ref
from org_service.pagination import SortOrder
from org_service.records.validation import (
    FIELD_PATH_PATTERN,
    RECORD_VALUE,
    Loc,
    invalid,
    key_problem,
    problem,
    shape_problems,
)

COMPARISONS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"})
LISTS = frozenset({"$in", "$nin"})
LOGICAL = frozenset({"$and", "$or"})
FIELD_OPERATORS = COMPARISONS | LISTS | {"$exists", "$not", "$regex", "$options"}
ALLOWED = ", ".join(sorted(FIELD_OPERATORS | LOGICAL))
MAX_FILTER_DEPTH = 20
MAX_BRANCHES = 100
MAX_LIST = 1000
MAX_PATH_CHARS = 256
MAX_REGEX_CHARS = 128
REGEX_OPTIONS = frozenset({"", "i"})
_REGEX_SPECIAL = frozenset(".^$*+?()[]{}|\\")
# Sort keys the cursor can page through; data fields are refused because keyset paging
# over values of mixed BSON types (or missing) would skip or repeat records.
SORT_FIELDS = {"created_at": ("created_at", "_id"), "updated_at": ("updated_at", "_id"),
               "id": ("_id",)}


def _fail(loc: Loc, msg: str) -> Exception:
    return invalid(problem(loc, msg))


def field_path(path: object, loc: Loc) -> str:
    """A dotted path into `data`; each segment a valid field name or an array index."""
    if not isinstance(path, str):
        raise _fail(loc, "field names must be strings")
    if len(path) > MAX_PATH_CHARS:
        raise _fail(loc, f"field path longer than {MAX_PATH_CHARS} characters")
    if path.startswith("$"):
        raise _fail(loc, f"operator {path[:64]!r} is not allowed in a field position; "
                         "use a field path into data, $and or $or")
    for segment in path.split("."):
        msg = key_problem(segment)
        if msg:
            raise _fail(loc, f"bad field path {path[:64]!r}: {msg}")
    return path


def _literal(value: Any, loc: Loc) -> Any:
    found = shape_problems(value, loc)
    if found:
        raise invalid(*found)
    return value


def _regex(pattern: Any, loc: Loc) -> str:
    if not isinstance(pattern, str):
        raise _fail(loc, "$regex takes a string")
    if len(pattern) > MAX_REGEX_CHARS:
        raise _fail(loc, f"$regex longer than {MAX_REGEX_CHARS} characters")
    if not pattern.startswith("^"):
        raise _fail(loc, "$regex must be anchored: start it with ^")
    i = 1
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            if i + 1 >= len(pattern) or pattern[i + 1] not in _REGEX_SPECIAL:
                raise _fail(loc, "$regex may only escape special characters (e.g. \\. or \\*)")
            i += 2
            continue
        if char in _REGEX_SPECIAL:
            raise _fail(loc, f"$regex may only be a literal prefix: {char!r} at position {i} "
                             f"is special; escape it as \\{char}")
        i += 1
    return pattern


def _condition(value: Any, loc: Loc, depth: int) -> Any:
    """The value for one field: a literal (equality) or a document of operators."""
    if not (isinstance(value, dict) and any(isinstance(k, str) and k.startswith("$")
                                            for k in value)):
        return _literal(value, loc)
    if depth > MAX_FILTER_DEPTH:
        raise _fail(loc, f"filter nested deeper than {MAX_FILTER_DEPTH} levels")
    out: Document = {}
    for op, operand in value.items():
        where = (*loc, str(op))
        if not isinstance(op, str) or not op.startswith("$"):
            raise _fail(where, "an operator document cannot also hold field names")
        if op not in FIELD_OPERATORS:
            raise _fail(where, f"operator {op[:64]!r} is not allowed; allowed: {ALLOWED}")
        if op in COMPARISONS:
            out[op] = _literal(operand, where)
        elif op in LISTS:
            if not isinstance(operand, list) or len(operand) > MAX_LIST:
                raise _fail(where, f"{op} takes a list of at most {MAX_LIST} values")
            out[op] = [_literal(item, (*where, i)) for i, item in enumerate(operand)]
        elif op == "$exists":
            if not isinstance(operand, bool):
                raise _fail(where, "$exists takes true or false")
            out[op] = operand
        elif op == "$not":
            if not (isinstance(operand, dict) and operand
                    and all(isinstance(k, str) and k.startswith("$") for k in operand)):
                raise _fail(where, "$not takes a document of operators, e.g. {\"$gt\": 3}")
            out[op] = _condition(operand, where, depth + 1)
        elif op == "$regex":
            out[op] = _regex(operand, where)
        else:  # $options
            if "$regex" not in value:
                raise _fail(where, "$options is only allowed next to $regex")
            if operand not in REGEX_OPTIONS:
                raise _fail(where, "$options may only be \"i\" (case-insensitive)")
            out[op] = operand
    return out


def compile_filter(spec: Any, loc: Loc = ("body", "filter"), depth: int = 1) -> Document:
    """The client's filter, checked and rewritten onto `data.<path>`."""
    if not isinstance(spec, dict):
        raise _fail(loc, "a filter is a JSON object")
    if depth > MAX_FILTER_DEPTH:
        raise _fail(loc, f"filter nested deeper than {MAX_FILTER_DEPTH} levels")
    out: Document = {}
    for key, value in spec.items():
        where = (*loc, str(key))
        if key in LOGICAL:
            if not isinstance(value, list) or not 1 <= len(value) <= MAX_BRANCHES:
                raise _fail(where, f"{key} takes a list of 1 to {MAX_BRANCHES} filters")
            out[key] = [compile_filter(branch, (*where, i), depth + 1)
                        for i, branch in enumerate(value)]
            continue
        if isinstance(key, str) and key.startswith("$"):
            if key in FIELD_OPERATORS:
                raise _fail(where, f"operator {key!r} must be applied to a field, e.g. "
                                   f"{{\"age\": {{\"{key}\": ...}}}}")
            raise _fail(where, f"operator {key[:64]!r} is not allowed; allowed: {ALLOWED}")
        out["data." + field_path(key, where)] = _condition(value, where, depth + 1)
    return out


def compile_sort(spec: dict[str, Any] | None, loc: Loc = ("body", "sort")) -> SortOrder:
    if not spec:
        return SortOrder(SORT_FIELDS["created_at"], 1)
    if len(spec) != 1:
        raise _fail(loc, "sort by exactly one key")
    (key, direction), = spec.items()
    if key not in SORT_FIELDS:
        raise _fail((*loc, key), "sort by one of: " + ", ".join(SORT_FIELDS))
    if direction not in (1, -1) or isinstance(direction, bool):
        raise _fail((*loc, key), "sort direction is 1 (ascending) or -1 (descending)")
    return SortOrder(SORT_FIELDS[key], direction)


# -- the same language for the OpenAPI document ---------------------------------------------
# What compile_filter and compile_sort accept, as JSON Schema (RecordValue is a record's
# literal value: its objects have no `$` keys, so an object is either a literal or a
# document of operators). Only the nesting bound (MAX_FILTER_DEPTH) is left to the words.
_SPECIAL = "".join("\\" + c for c in sorted(_REGEX_SPECIAL))
_OPERATORS = component("RecordOperators", {
    "type": "object", "minProperties": 1,
    "propertyNames": {"enum": sorted(FIELD_OPERATORS)},
    "properties": {
        **{op: RECORD_VALUE for op in sorted(COMPARISONS)},
        **{op: {"type": "array", "maxItems": MAX_LIST, "items": RECORD_VALUE}
           for op in sorted(LISTS)},
        "$exists": {"type": "boolean"},
        "$not": ref("RecordOperators"),
        "$regex": {"type": "string", "maxLength": MAX_REGEX_CHARS,
                   "pattern": f"^\\^([^{_SPECIAL}]|\\\\[{_SPECIAL}])*$"},
        "$options": {"enum": sorted(REGEX_OPTIONS)},
    },
    "dependentRequired": {"$options": ["$regex"]},
    "description": "Operators on one field: $eq $ne $gt $gte $lt $lte $in $nin $exists $not, "
                   "and $regex as an anchored literal prefix (`^` then plain or escaped "
                   "characters) with $options \"i\"",
})
FILTER_SCHEMA = component("RecordFilter", {
    "type": "object",
    "propertyNames": {"anyOf": [{"enum": sorted(LOGICAL)}, {
        "maxLength": MAX_PATH_CHARS, "pattern": FIELD_PATH_PATTERN}]},
    "properties": {op: {"type": "array", "minItems": 1, "maxItems": MAX_BRANCHES,
                        "items": ref("RecordFilter")} for op in sorted(LOGICAL)},
    "additionalProperties": {"anyOf": [RECORD_VALUE, _OPERATORS]},
    "description": "MongoDB-style filter over data fields (dotted paths), $and and $or; "
                   f"nested at most {MAX_FILTER_DEPTH} levels (deeper: 422)",
})
SORT_SCHEMA = {"anyOf": [{
    "type": "object", "maxProperties": 1,  # {} sorts by creation, as null does
    "propertyNames": {"enum": list(SORT_FIELDS)},
    "additionalProperties": {"enum": [1, -1]}}, {"type": "null"}],
    "description": f"One of {', '.join(SORT_FIELDS)}: 1 or -1"}
