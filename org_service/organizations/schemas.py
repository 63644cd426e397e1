from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from org_service.db import Document
from org_service.models import Email, Password, RequestModel
from org_service.naming import OrganizationName

IDEMPOTENCY_KEY_MAX = 255
# An RFC 8941 string ("...", any printable ASCII inside) or a bare token (printable ASCII,
# no spaces at its ends), 1-255 characters either way; spaces or tabs around are ignored.
IDEMPOTENCY_KEY_PATTERN = (rf'^[ \t]*("([ -~]{{1,{IDEMPOTENCY_KEY_MAX}}})"'
                           rf'|([!-~](?:[ -~]{{0,{IDEMPOTENCY_KEY_MAX - 2}}}[!-~])?))[ \t]*$')

# An organization's states: only an active one serves its tenant; the others are the
# moments of a journaled create, rename or delete (see lifecycle.py).
ACTIVE = "active"
CREATING, RENAMING, DELETING = "creating", "renaming", "deleting"
# An organization coming back: from the restore window while its members and collection
# return (window.py), or being replaced by a backup (`org-service restore --replace`). Like
# a rename, a moment, during which its tenant requests get 503 + Retry-After.
RESTORING = "restoring"
BUSY = (RENAMING, RESTORING)
# States in which an organization can be looked up by name (a rename is brief and visible).
VISIBLE = (ACTIVE, RENAMING)


class OrganizationCreate(RequestModel):
    organization_name: OrganizationName
    email: Email
    password: Password


class OrganizationLookup(RequestModel):
    organization_name: OrganizationName


class OrganizationUpdate(RequestModel):
    old_organization_name: OrganizationName
    new_organization_name: OrganizationName
    email: Email | None = None
    password: Password | None = None
    # Step-up for an email or password change with a token from an older login (see
    # CREDENTIAL_CHANGE_MAX_AGE_SECONDS). Loose like the login's: a malformed one is wrong.
    current_password: str | None = Field(
        default=None, description="The admin's current password: required to change email "
        "or password unless the token comes from a login in the last "
        "CREDENTIAL_CHANGE_MAX_AGE_SECONDS; checked whenever given")


class OrganizationDelete(RequestModel):
    organization_name: OrganizationName


class OrganizationCreated(BaseModel):
    id: str
    organization_name: str
    collection_name: str
    admin_email: str
    created_at: datetime


class OrganizationPublic(BaseModel):
    id: str
    organization_name: str
    collection_name: str
    created_at: datetime
    updated_at: datetime


class OrganizationUpdated(OrganizationPublic):
    """The seed's answer to an update, plus the email change the update asked for."""

    pending_email: str | None = Field(default=None, description=(
        "An email change asked for by this update: the address waits for the link mailed "
        "to it (POST /auth/verify-email); until then the admin logs in with the old email"))


class OrganizationDeleted(BaseModel):
    deleted: Literal[True] = True
    id: str
    organization_name: str
    collection_name: str


def created_view(org: Document, admin: Document) -> OrganizationCreated:
    """The answer to a create (and to its replays)."""
    return OrganizationCreated(
        id=str(org["_id"]),
        organization_name=org["organization_name"],
        collection_name=org["collection_name"],
        admin_email=admin["email"],
        created_at=org["created_at"],
    )


def public(org: Document) -> OrganizationPublic:
    """The public view of a stored organization."""
    return OrganizationPublic(
        id=str(org["_id"]),
        organization_name=org["organization_name"],
        collection_name=org["collection_name"],
        created_at=org["created_at"],
        updated_at=org["updated_at"],
    )
