"""Organization names → slugs → collection names."""

from __future__ import annotations

import pytest

from org_service.naming import (
    SLUG_MAX,
    OrganizationIdentity,
    clean_organization_name,
    collection_for,
    slug_of,
)


@pytest.mark.parametrize(("name", "collection"), [
    ("Test Company", "org_test_company"),
    ("Acme Corp", "org_acme_corp"),
    ("acme  corp", "org_acme_corp"),
    ("ACME-Corp", "org_acme_corp"),
    ("Café", "org_cafe"),
    ("株式会社", "org_zhu_shi_hui_she"),
    ("Müller & Söhne (GmbH)", "org_muller_sohne_gmbh"),
    ("O'Reilly, Inc.", "org_o_reilly_inc"),
    ("Ελληνική Εταιρεία", "org_ellenike_etaireia"),
    ("2nd Street", "org_2nd_street"),
])
def test_collection_name_is_the_ascii_slug(name: str, collection: str) -> None:
    assert collection_for(slug_of(clean_organization_name(name))) == collection


def test_slug_is_capped_and_stays_a_legal_collection_name() -> None:
    name = "Organisation " * 7 + "X"
    slug = slug_of(clean_organization_name(name[:100]))
    assert 0 < len(slug) <= SLUG_MAX
    assert not slug.startswith("_") and not slug.endswith("_")
    namespace = f"master_db.{collection_for(slug)}"
    assert len(namespace.encode()) < 120 and "$" not in namespace and "\0" not in namespace


def test_name_is_trimmed_and_normalised() -> None:
    assert clean_organization_name("  Acme Corp \t") == "Acme Corp"
    assert clean_organization_name("Cafe\u0301") == "Café"  # NFC


@pytest.mark.parametrize("name", ["A", "-Acme", "Acme/Corp", "Acme\u200bCorp", "Acme\x07",
                                  "x" * 101, "(Acme)"])
def test_invalid_names_raise(name: str) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        clean_organization_name(name)


def test_an_identity_carries_the_name_its_slug_and_its_collection_together() -> None:
    identity = OrganizationIdentity.of("Café Ünïon Ltd")
    assert identity.name == "Café Ünïon Ltd"
    assert identity.slug == slug_of("Café Ünïon Ltd") == "cafe_union_ltd"
    assert identity.collection == collection_for(identity.slug) == "org_cafe_union_ltd"
