"""Each rule the server checks in code says the same as the schema the document states for
it: for any input, the validator (jsonschema_rs, the one Schemathesis uses) and the server
agree on accept or refuse. Inputs come from Hypothesis's text and JSON strategies and from
the documented patterns themselves."""

from __future__ import annotations

import re
from typing import Any

import jsonschema_rs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from org_service.errors import ServiceError
from org_service.main import create_app
from org_service.models import Email
from org_service.naming import clean_organization_name
from org_service.organizations.service import idempotency_key
from org_service.records.service import expected_version
from org_service.records.validation import shape_problems

DOCUMENT = create_app().openapi()
SCHEMAS = DOCUMENT["components"]["schemas"]
SETTINGS = settings(max_examples=300, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))


def validator(schema: dict[str, Any]) -> Any:
    # Resolved against the whole document, as a client or Schemathesis resolves it.
    return jsonschema_rs.validator_for({**schema, "components": DOCUMENT["components"]})


def server_accepts(check: Any, value: Any) -> bool:
    try:
        check(value)
    except (ValueError, ValidationError, ServiceError):
        return False
    return True


def parameter(path: str, method: str, name: str) -> dict[str, Any]:
    found = [p for p in DOCUMENT["paths"][path][method]["parameters"] if p["name"] == name]
    schema: dict[str, Any] = found[0]["schema"]
    return schema


NAME = validator(SCHEMAS["OrganizationCreate"]["properties"]["organization_name"])
EMAIL = validator(SCHEMAS["OrganizationCreate"]["properties"]["email"])
IF_MATCH = validator(parameter("/org/records/{kind}/{record_id}", "put", "If-Match"))
IDEMPOTENCY_KEY = validator(parameter("/org/create", "post", "Idempotency-Key"))
RECORD = validator(DOCUMENT["paths"]["/org/records/{kind}"]["post"]["requestBody"]
                   ["content"]["application/json"]["schema"])
EMAILS = TypeAdapter(Email)


def texts_and(pattern: str) -> st.SearchStrategy[str]:
    """Any text, and text made to fit `pattern` (read by Python's engine: only used where
    the pattern is in the syntax both engines share)."""
    return st.one_of(st.text(max_size=120), st.from_regex(re.compile(pattern), fullmatch=True))


@SETTINGS
@given(st.one_of(st.text(max_size=120), st.sampled_from(
    ["Acme Corp", " Café ", "株式会社", "e\u0301", "a\u20f0b", "a\u20ffb", "a", "(ab", "ab\ufeff",
     "ab\x85", "\u3000ab\u3000", "ab\x1c"])))
def test_organization_names(name: str) -> None:
    assert NAME.is_valid(name) == server_accepts(clean_organization_name, name), repr(name)


@SETTINGS
@given(texts_and(SCHEMAS["OrganizationCreate"]["properties"]["email"]["pattern"]))
def test_emails(email: str) -> None:
    assert EMAIL.is_valid(email) == server_accepts(EMAILS.validate_python, email), repr(email)


@SETTINGS
@given(texts_and(r'[ \t]{0,2}(\*|(W/)?"?[0-9]{1,20}"?)[ \t]{0,2}'))
def test_if_match(header: str) -> None:
    assert IF_MATCH.is_valid(header) == server_accepts(expected_version, header), repr(header)


@SETTINGS
@given(st.one_of(st.text(max_size=300), st.text(st.characters(min_codepoint=32,
                                                                 max_codepoint=126),
                                                 max_size=260)))
def test_idempotency_keys(header: str) -> None:
    assert IDEMPOTENCY_KEY.is_valid(header) == server_accepts(idempotency_key, header), \
        repr(header)


JSON = st.recursive(
    st.none() | st.booleans() | st.text(max_size=5)
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=4), children, max_size=3), max_leaves=12)


@SETTINGS
@given(st.dictionaries(st.text(max_size=4), JSON, max_size=4))
def test_record_data(data: dict[str, Any]) -> None:
    # The depth bound is the one rule left to the description: these stay far inside it.
    assert RECORD.is_valid(data) == (shape_problems(data, ("body",)) == []), data


def patterns(node: Any) -> list[str]:
    """Every `pattern` in a part of the document."""
    if isinstance(node, dict):
        found = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
        return found + [p for value in node.values() for p in patterns(value)]
    if isinstance(node, list):
        return [p for value in node for p in patterns(value)]
    return []


ENGINE_SPECIFIC = re.compile(r"(?<!\\)\\[swdbSWDB]")


def test_no_pattern_relies_on_an_engine_specific_class() -> None:
    # \s, \w, \d and \b mean different things to ECMAScript, Python and Rust.
    assert ENGINE_SPECIFIC.search(r"^\s*x$") and not ENGINE_SPECIFIC.search(r"^\\s$")
    found = patterns(DOCUMENT)
    assert len(found) > 10
    assert [p for p in found if ENGINE_SPECIFIC.search(p)] == []
