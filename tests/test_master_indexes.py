"""Every master collection has the indexes it declares (name, keys, unique, TTL, partial
filter) once the service has started. Most are invisible in behaviour until load finds
them missing: a non-unique slug index still refuses duplicates through the slug claims,
a dropped TTL index only shows as a collection that never shrinks."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers import create_org

# What an index declaration says; the server adds the rest (its version `v`, ...).
DECLARED = ("key", "unique", "sparse", "expireAfterSeconds", "partialFilterExpression",
            "collation")
ID = {"_id_": {"key": [("_id", 1)]}}


def expected_indexes(settings: Any) -> dict[str, dict[str, dict[str, Any]]]:
    return {
        "organizations": {
            **ID,
            "slug_unique": {"key": [("slug", 1)], "unique": True},
            "collection_name_unique": {"key": [("collection_name", 1)], "unique": True},
        },
        "members": {
            **ID,
            # One account per email across the service, case-insensitively.
            "email_unique": {"key": [("email_key", 1)], "unique": True},
            # The listing and its filters: organization, then the filtered field, then _id
            # (the page order).
            "organization": {"key": [("organization_id", 1), ("_id", 1)]},
            **{f"organization_{field}": {"key": [("organization_id", 1), (field, 1), ("_id", 1)]}
               for field in ("role", "state", "manager_id", "department", "name_key")},
        },
        # Expired counters are swept (expiry itself is decided on read).
        "login_failures": {**ID, "expire": {"key": [("expires_at", 1)],
                                            "expireAfterSeconds": 0}},
        "audit_log": {
            **ID,
            # An organization's audit trail, newest first.
            "organization_newest": {"key": [("organization_id", 1), ("_id", -1)]},
            "collapse_key": {"key": [("collapse_key", 1)], "unique": True,
                             "partialFilterExpression": {"collapse_key": {"$exists": True}}},
            "retention": {"key": [("at", 1)],
                          "expireAfterSeconds": settings.AUDIT_RETENTION_DAYS * 24 * 3600},
        },
        "lifecycle_ops": {
            **ID,
            "one_op_per_organization": {"key": [("organization_id", 1)], "unique": True},
            "lease": {"key": [("lease_until", 1)]},
            "expiry": {"key": [("expires_at", 1)], "expireAfterSeconds": 0},
        },
        "idempotency_keys": {
            **ID,
            "ttl": {"key": [("created_at", 1)],
                    "expireAfterSeconds": settings.IDEMPOTENCY_KEY_TTL_SECONDS},
        },
        "slug_claims": ID,  # the slug is the _id: one claim per slug
        "tenant_collections": {**ID, "organization": {"key": [("organization_id", 1)]}},
        "password_resets": {
            **ID,
            "token_hash": {"key": [("token_hash", 1)], "unique": True},
            # Kept a week past expiry (an expired link answers 410), then swept.
            "expiry": {"key": [("expires_at", 1)], "expireAfterSeconds": 7 * 24 * 3600},
        },
        # The same store of member links (org_service/links.py MemberLinks).
        "email_verifications": {
            **ID,
            "token_hash": {"key": [("token_hash", 1)], "unique": True},
            "expiry": {"key": [("expires_at", 1)], "expireAfterSeconds": 7 * 24 * 3600},
        },
    }


async def test_every_master_collection_has_exactly_its_declared_indexes(
        client: httpx.AsyncClient, master: Any, settings: Any) -> None:
    await create_org(client, "Acme")  # slug_claims exists from the first claim on
    expected = expected_indexes(settings)
    found = {}
    for collection in expected:
        indexes = await master[collection].index_information()
        found[collection] = {name: {option: spec[option] for option in DECLARED
                                    if option in spec}
                             for name, spec in indexes.items()}
    assert found == expected
