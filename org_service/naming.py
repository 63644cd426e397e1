"""Organization names, their slugs and the tenant collection names derived from them.

Two names with the same slug are the same organization: the slug is the identity that the
unique index arbitrates, and the collection is always ``org_<slug>``.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated

from pydantic import AfterValidator, Field
from slugify import slugify

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


def clean_organization_name(value: str) -> str:
    name = unicodedata.normalize("NFC", value).strip()
    if not NAME_MIN <= len(name) <= NAME_MAX:
        raise ValueError(f"must be {NAME_MIN}-{NAME_MAX} characters after trimming spaces")
    if not (name[0].isalnum()):
        raise ValueError("must start with a letter or a digit")
    bad = sorted({c for c in name if not _allowed(c)})
    if bad:
        shown = ", ".join(repr(c) for c in bad[:5])
        raise ValueError(
            f"contains characters that are not allowed ({shown}); use letters, digits, "
            "spaces and - & . , ' ( )"
        )
    if not slug_of(name):
        raise ValueError("has no letters or digits that can form a collection name")
    return name


OrganizationName = Annotated[str, AfterValidator(clean_organization_name), Field(
    description=(f"{NAME_MIN}-{NAME_MAX} characters after trimming spaces, starting with a "
                 "letter or a digit; letters of any script, digits, spaces and - & . , ' ( )"),
    examples=["Acme Corp"],
    # Documented only: the validator above gives the clearer error messages.
    json_schema_extra={"minLength": NAME_MIN, "maxLength": NAME_MAX},
)]
