"""Building blocks shared by every request and response schema."""

from __future__ import annotations

import re
from typing import Annotated

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.networks import validate_email

from org_service.security import PASSWORD_MAX, PASSWORD_MIN

# Unicode's White_Space: what pydantic's strip_whitespace (Rust's trim) removes, and what
# names are trimmed of. Patterns name it by this class, never by `\s`, whose meaning differs
# between the regex engines that read the document (ECMAScript, Python, Rust).
WHITESPACE = ("\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
              + "\u2028\u2029\u202f\u205f\u3000")
WHITESPACE_CLASS = "".join(f"\\u{ord(c):04x}" for c in WHITESPACE)
# Text that is more than whitespace (unanchored: some character is not trimmed away).
NOT_BLANK = {"pattern": f"[^{WHITESPACE_CLASS}]"}


class RequestModel(BaseModel):
    """Unknown fields are refused (422), so nobody can slip in `role` or `organization_id`."""

    model_config = ConfigDict(extra="forbid")


Password = Annotated[str, StringConstraints(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)]

# What an email address may be, stated once for the document and the server alike: a
# dot-atom of ASCII before the @, DNS labels after it, a top-level domain of letters, and
# not a special-use domain (.test, .local, ...). A generator reading the document produces
# only addresses that email-validator (which still checks and normalizes each one) accepts.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
# A DNS label: letters, digits and inner hyphens, at most 63, and never hyphens 3rd and 4th
# ("ab--c": RFC 5890's reserved R-LDH labels, which email-validator refuses; Punycode
# "xn--" labels too, as the address is ASCII). Spelled out, since there is no lookahead.
_ALNUM = "[A-Za-z0-9]"
_LABEL = (rf"{_ALNUM}{{1,2}}|{_ALNUM}[A-Za-z0-9-](?:{_ALNUM}(?:[A-Za-z0-9-]{{0,59}}{_ALNUM})?"
          rf"|-{_ALNUM}(?:[A-Za-z0-9-]{{0,58}}{_ALNUM})?)")
EMAIL_PATTERN = (rf"^{_ATEXT}+(\.{_ATEXT}+)*"
                 rf"@((?:{_LABEL})\.)+[A-Za-z]{{2,63}}$")
# JSON Schema has no lookahead a generator can use: the special-use domains are a `not`.
SPECIAL_USE_PATTERN = r"\.(" + "|".join(
    "".join(f"[{c.upper()}{c}]" for c in name) for name in SPECIAL_USE_DOMAIN_NAMES) + ")$"
_EMAIL = re.compile(EMAIL_PATTERN)
_SPECIAL_USE = re.compile(SPECIAL_USE_PATTERN)


def _email(value: str) -> str:
    if not _EMAIL.fullmatch(value):
        raise ValueError("must be an email address like name@example.com (ASCII letters, "
                         "digits and !#$%&'*+/=?^_`{|}~- before the @, a domain after it)")
    if _SPECIAL_USE.search(value):
        raise ValueError("the domain is special-use or reserved (.test, .local, ...): it "
                         "cannot receive email")
    return validate_email(value)[1]


# (No `format: email`: validators of the document judge that format by rules of their own,
# stricter or looser than the server's; the pattern is the server's rule.)
Email = Annotated[str, Field(max_length=254, json_schema_extra={
    "pattern": EMAIL_PATTERN, "not": {"pattern": SPECIAL_USE_PATTERN}}), AfterValidator(_email)]


def email_key(email: str) -> str:
    """Emails are unique case-insensitively: this is the form the unique index holds."""
    return email.strip().casefold()


def mask_email(email: str) -> str:
    """j***@example.com: enough for its owner to recognise, not for others to learn."""
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}***@{domain}"
