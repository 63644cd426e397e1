"""Organization names, their slugs and the tenant collection names derived from them.

Two names with the same slug are the same organization: the slug is the identity that the
unique index arbitrates, and the collection is always ``org_<slug>``.
"""

from __future__ import annotations

import sys
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated

from pydantic import AfterValidator, Field
from slugify import slugify

from org_service.models import WHITESPACE, WHITESPACE_CLASS

NAME_MIN, NAME_MAX = 2, 100
SLUG_MAX = 64  # "org_" + 64 bytes keeps `master_db.org_<slug>` far inside the 255-byte limit
COLLECTION_PREFIX = "org_"
_PUNCTUATION = set(" -&.,'()")


def _allowed(char: str) -> bool:
    # Letters and combining marks of any script, decimal digits, and a little punctuation.
    category = unicodedata.category(char)
    return category[0] in "LM" or category == "Nd" or char in _PUNCTUATION


@lru_cache(maxsize=4096)
def slug_of(name: str) -> str:
    # Cached: python-slugify's transliteration costs tens of microseconds, and each lookup
    # by name computes it twice (validation, then the query).
    return slugify(name, separator="_", max_length=SLUG_MAX, word_boundary=False)


def collection_for(slug: str) -> str:
    return COLLECTION_PREFIX + slug


@dataclass(frozen=True, slots=True)
class OrganizationIdentity:
    """An organization's name as it travels through the layers: the display name, the slug
    that is its identity, and the collection named from that slug, derived once where the
    name enters (a request body, a stored document) and carried together."""

    name: str
    slug: str
    collection: str

    @classmethod
    def of(cls, name: str) -> OrganizationIdentity:
        slug = slug_of(name)
        return cls(name, slug, collection_for(slug))


_PUNCT_CLASS = r" \-&.,'()"


@lru_cache(maxsize=1)
def _marks_class() -> str:
    """Every combining mark (category M) as character ranges, from the same Unicode data the
    validator reads. Not `\\p{M}`: a generator that cannot read it guesses marks of its own,
    unassigned code points among them, and sends names the server rightly refuses."""
    ranges: list[tuple[int, int]] = []
    for code in range(sys.maxunicode + 1):
        if unicodedata.category(chr(code))[0] == "M":
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))
    return "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in ranges)


@lru_cache(maxsize=1)
def name_pattern() -> str:
    """The rules below as one pattern, for the document: after trimming, NAME_MIN-NAME_MAX
    characters, the first a letter or a digit, every one a letter, mark, digit or one of the
    punctuation above (the last of them not a space, as trimming leaves it). Built when the
    document is (it walks the Unicode table once)."""
    allowed = rf"\p{{L}}\p{{Nd}}{_marks_class()}"
    space = f"[{WHITESPACE_CLASS}]*"
    return (rf"^{space}[\p{{L}}\p{{Nd}}][{allowed}{_PUNCT_CLASS}]{{{NAME_MIN - 2},{NAME_MAX - 2}}}"
            rf"[{allowed}{_PUNCT_CLASS[1:]}]{space}$")


def clean_organization_name(value: str) -> str:
    # Checked as sent (trimmed), then normalized: the pattern a client reads is about the
    # characters it sends.
    name = value.strip(WHITESPACE)
    if not NAME_MIN <= len(name) <= NAME_MAX:
        raise ValueError(f"must be {NAME_MIN}-{NAME_MAX} characters after trimming spaces")
    if not (name[0].isalpha() or unicodedata.category(name[0]) == "Nd"):
        raise ValueError("must start with a letter or a digit")
    bad = sorted({c for c in name if not _allowed(c)})
    if bad:
        shown = ", ".join(repr(c) for c in bad[:5])
        raise ValueError(
            f"contains characters that are not allowed ({shown}); use letters, digits, "
            "spaces and - & . , ' ( )"
        )
    name = unicodedata.normalize("NFC", name)
    if not slug_of(name):
        raise ValueError("has no letters or digits that can form a collection name")
    return name


OrganizationName = Annotated[str, AfterValidator(clean_organization_name), Field(
    description=(f"{NAME_MIN}-{NAME_MAX} characters after trimming spaces, starting with a "
                 "letter or a digit; letters of any script, digits, spaces and - & . , ' ( )."
                 " A name must also have a letter or digit that transliterates to ASCII (the "
                 "collection is named from it): one that has none is a 422"),
    examples=["Acme Corp"],
    # Documented only: the validator above states the same rules with clearer messages.
    json_schema_extra=lambda schema: schema.update(minLength=NAME_MIN, pattern=name_pattern()),
)]
