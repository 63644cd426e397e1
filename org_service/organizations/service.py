"""The rules of an organization's life: create, look up, rename, change credentials, delete."""

from __future__ import annotations

import asyncio
import logging

from pymongo.errors import DuplicateKeyError, OperationFailure

from org_service.admins.repository import AdminRepository
from org_service.db import Document
from org_service.errors import Conflict, Forbidden, NotFound
from org_service.naming import collection_for, slug_of
from org_service.organizations.repository import (
    ACTIVE,
    NAMESPACE_EXISTS,
    OrganizationRepository,
    TenantCollections,
)
from org_service.organizations.schemas import (
    OrganizationCreate,
    OrganizationCreated,
    OrganizationDeleted,
    OrganizationPublic,
    OrganizationUpdate,
)
from org_service.security import PasswordHasher
from org_service.tenancy import TenantContext

log = logging.getLogger(__name__)
CREATING, DELETING = "creating", "deleting"


def public(org: Document) -> OrganizationPublic:
    return OrganizationPublic(
        id=str(org["_id"]),
        organization_name=org["organization_name"],
        collection_name=org["collection_name"],
        created_at=org["created_at"],
        updated_at=org["updated_at"],
    )


def _name_taken(name: str) -> Conflict:
    return Conflict(f"An organization named '{name}' (or a name with the same slug) exists")


def _email_taken() -> Conflict:
    return Conflict("This email is already used by another admin")


class OrganizationService:
    def __init__(self, *, organizations: OrganizationRepository, admins: AdminRepository,
                 collections: TenantCollections, hasher: PasswordHasher) -> None:
        self.organizations = organizations
        self.admins = admins
        self.collections = collections
        self.hasher = hasher

    async def create(self, data: OrganizationCreate) -> OrganizationCreated:
        name, email = data.organization_name, str(data.email)
        slug = slug_of(name)
        collection_name = collection_for(slug)
        # Hash first: nothing is written until the slow, failure-free part is done.
        password_hash = await self.hasher.hash(data.password)
        if await self.admins.get_by_email(email):
            raise _email_taken()
        try:
            # The unique slug index decides races: of N identical creates exactly one inserts.
            org = await self.organizations.insert(
                name=name, slug=slug, collection_name=collection_name, state=CREATING)
        except DuplicateKeyError:
            raise _name_taken(name) from None
        created_collection = False
        try:
            try:
                admin = await self.admins.insert(
                    email=email, password_hash=password_hash, organization_id=org["_id"])
            except DuplicateKeyError:
                raise _email_taken() from None
            created_collection = await self.collections.create(collection_name)
            if not created_collection:
                raise Conflict(f"The collection '{collection_name}' already exists")
            org = await self.organizations.update(
                org["_id"], {"admin_user_id": str(admin["_id"]), "state": ACTIVE}) or org
        except BaseException:
            await asyncio.shield(self._undo_create(org, created_collection))
            raise
        return OrganizationCreated(
            id=str(org["_id"]),
            organization_name=org["organization_name"],
            collection_name=org["collection_name"],
            admin_email=admin["email"],
            created_at=org["created_at"],
        )

    async def _undo_create(self, org: Document, created_collection: bool) -> None:
        try:
            await self.admins.delete_for(org["_id"])
            if created_collection:
                await self.collections.drop(org["collection_name"])
            await self.organizations.delete(org["_id"])
        except Exception:  # the organization stays in state "creating", invisible
            log.exception("could not undo a failed create of %s", org["collection_name"])

    async def get(self, name: str) -> OrganizationPublic:
        org = await self.organizations.get_by_slug(slug_of(name))
        if org is None:
            raise NotFound(f"Organization '{name}' not found")
        return public(org)

    async def update(self, tenant: TenantContext, data: OrganizationUpdate) -> OrganizationPublic:
        org = tenant.organization
        self._require_own(tenant, data.old_organization_name)
        new_name = data.new_organization_name
        new_slug = slug_of(new_name)
        password_hash = await self.hasher.hash(data.password) if data.password else None
        if data.email is not None:
            holder = await self.admins.get_by_email(str(data.email))
            if holder is not None and holder["_id"] != tenant.admin["_id"]:
                raise _email_taken()
        if new_slug != org["slug"]:
            org = await self._rename(org, new_name, new_slug)
        elif new_name != org["organization_name"]:
            org = await self.organizations.update(
                org["_id"], {"organization_name": new_name}) or org
        if data.email is not None or password_hash is not None:
            try:
                await self.admins.set_credentials(
                    tenant.admin["_id"],
                    email=str(data.email) if data.email is not None else None,
                    password_hash=password_hash,
                )
            except DuplicateKeyError:
                raise _email_taken() from None
        return public(org)

    async def _rename(self, org: Document, new_name: str, new_slug: str) -> Document:
        target = collection_for(new_slug)
        if await self.organizations.get_by_slug(new_slug, active_only=False):
            raise _name_taken(new_name)
        try:
            await self.collections.rename(org["collection_name"], target)
        except OperationFailure as exc:
            if exc.code == NAMESPACE_EXISTS:
                raise Conflict(f"The collection '{target}' already exists") from None
            raise
        try:
            updated = await self.organizations.update(
                org["_id"],
                {"organization_name": new_name, "slug": new_slug, "collection_name": target},
            )
        except DuplicateKeyError:
            await self.collections.rename(target, org["collection_name"])
            raise _name_taken(new_name) from None
        return updated or org

    async def delete(self, tenant: TenantContext, name: str) -> OrganizationDeleted:
        org = tenant.organization
        self._require_own(tenant, name)
        # Invisible first: from here no token of this organization resolves.
        await self.organizations.update(org["_id"], {"state": DELETING})
        await self.collections.drop(org["collection_name"])
        await self.admins.delete_for(org["_id"])
        await self.organizations.delete(org["_id"])
        return OrganizationDeleted(
            id=str(org["_id"]),
            organization_name=org["organization_name"],
            collection_name=org["collection_name"],
        )

    @staticmethod
    def _require_own(tenant: TenantContext, name: str) -> None:
        if slug_of(name) != tenant.organization["slug"]:
            raise Forbidden("You can only act on your own organization")
