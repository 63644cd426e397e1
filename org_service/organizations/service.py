"""The rules of an organization's life: create, look up, rename, change credentials, delete.

Create, rename and delete run as journaled operations (see lifecycle.py)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import re
from dataclasses import dataclass

from bson import ObjectId
from pymongo.errors import DuplicateKeyError, PyMongoError

from org_service.auth.credentials import Credentials, StepUp, email_taken
from org_service.db import Document, utcnow
from org_service.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    Unprocessable,
    name_taken,
)
from org_service.members.repository import MemberRepository
from org_service.naming import OrganizationIdentity, slug_of
from org_service.organizations.errors import Stale
from org_service.organizations.lifecycle import LifecycleManager
from org_service.organizations.repository import IdempotencyKeys, OrganizationRepository
from org_service.organizations.schemas import (
    ACTIVE,
    IDEMPOTENCY_KEY_MAX,
    IDEMPOTENCY_KEY_PATTERN,
    VISIBLE,
    OrganizationCreate,
    OrganizationCreated,
    OrganizationDeleted,
    OrganizationPublic,
    OrganizationUpdate,
    OrganizationUpdated,
    created_view,
    public,
)
from org_service.security import PasswordHasher
from org_service.tenancy import TenantContext

log = logging.getLogger(__name__)


def _different_body() -> Unprocessable:
    return Unprocessable("This Idempotency-Key was used with a different request body")


def require_own(own_slug: str, named_slug: str) -> None:
    """The caller may act only on its own organization: the name it gave must have its
    organization's slug."""
    if named_slug != own_slug:
        raise Forbidden("You can only act on your own organization")


def idempotency_key(header: str | None) -> str | None:
    """The key of an `Idempotency-Key` header: an RFC 8941 string ("...") or a bare token."""
    if header is None:
        return None
    found = re.fullmatch(IDEMPOTENCY_KEY_PATTERN, header)
    if found is None:
        raise BadRequest(f"Idempotency-Key must be 1-{IDEMPOTENCY_KEY_MAX} printable ASCII "
                         "characters")
    quoted, bare = found[2], found[3]
    return quoted if quoted is not None else bare


@dataclass(frozen=True, slots=True)
class DeleteTarget:
    """Who a delete acts for: a live tenant, or the journal entry of a delete it already
    made (its admin is gone, so a repeated delete is answered from the journal)."""

    tenant: TenantContext | None = None
    finished: Document | None = None


class OrganizationService:
    def __init__(self, *, organizations: OrganizationRepository, members: MemberRepository,
                 lifecycle: LifecycleManager, keys: IdempotencyKeys, hasher: PasswordHasher,
                 credentials: Credentials,
                 fingerprint_secret: bytes) -> None:
        self.organizations = organizations
        self.members = members
        self.lifecycle = lifecycle
        self.keys = keys
        self.hasher = hasher
        self.credentials = credentials
        self._fingerprint_secret = fingerprint_secret

    def _fingerprint(self, data: OrganizationCreate) -> str:
        # The record outlives the request, so it holds nothing derived from the password: a
        # MAC over it would let whoever reads the record and knows the key check guesses at
        # HMAC speed. A replay's password is checked against the admin's bcrypt hash instead.
        # Keyed all the same: the rest of the body (the email) is not for the record to show.
        body = data.model_dump(mode="json", exclude={"password"})
        canonical = json.dumps(body, sort_keys=True).encode()
        return hmac.new(self._fingerprint_secret, canonical, hashlib.sha256).hexdigest()

    async def _require_same_password(self, data: OrganizationCreate,
                                     organization_id: ObjectId) -> None:
        """A replay must carry the password the first request created the admin with
        (bcrypt, off the event loop); another password is another request body."""
        admin = await self.members.first_of(organization_id)
        if admin is None:
            raise Conflict("The organization created with this Idempotency-Key no longer "
                           "exists; use a new key to create it again")
        if not await self.hasher.verify(data.password, admin.get("password_hash")):
            raise _different_body()

    async def create(self, data: OrganizationCreate, key: str | None = None
                     ) -> OrganizationCreated:
        if key is None:
            return await self._create(data, ObjectId())
        fingerprint = self._fingerprint(data)
        organization_id = ObjectId()
        known = await self.keys.begin(key, fingerprint=fingerprint,
                                      organization_id=organization_id,
                                      lease_until=utcnow() + self.lifecycle.lease)
        if known is not None:
            if known.get("fingerprint", fingerprint) != fingerprint:
                raise _different_body()
            if known["state"] == "done":
                await self._require_same_password(data, known["organization_id"])
                return OrganizationCreated.model_validate(known["body"])
            now = utcnow()
            adopted = await self.keys.take_over(key, now=now,
                                                lease_until=now + self.lifecycle.lease)
            if adopted is None:
                raise Conflict("A request with this Idempotency-Key is still being processed")
            organization_id = adopted["organization_id"]
            earlier = await self._created_earlier(organization_id)
            if earlier is not None:  # the first request created it but died answering
                await self.keys.complete(key, status=201, body=earlier.model_dump(mode="json"))
                await self._require_same_password(data, organization_id)
                return earlier
        try:
            created = await self._create(data, organization_id)
        except BaseException:
            # Only successes are replayed: a retry runs again (if the database is down now,
            # the key is adopted by the first retry once its lease has run out).
            with contextlib.suppress(PyMongoError):
                await self.keys.abandon(key)
            raise
        await self.keys.complete(key, status=201, body=created.model_dump(mode="json"))
        return created

    async def _created_earlier(self, organization_id: ObjectId) -> OrganizationCreated | None:
        org = await self.organizations.get(organization_id)
        admin = await self.members.first_of(organization_id) if org else None
        if org is None or admin is None:
            return None
        return created_view(org, admin)

    async def _create(self, data: OrganizationCreate, organization_id: ObjectId
                      ) -> OrganizationCreated:
        identity, email = OrganizationIdentity.of(data.organization_name), str(data.email)
        # Hash first: nothing is written until the slow, failure-free part is done.
        password_hash = await self.hasher.hash(data.password)
        if await self.members.get_by_email(email):
            raise email_taken()
        try:
            org, admin = await self.lifecycle.create(
                organization_id=organization_id, identity=identity, email=email,
                password_hash=password_hash)
        except DuplicateKeyError as exc:
            if "email" in str(exc):
                raise email_taken() from None
            raise name_taken(identity.name) from None
        return created_view(org, admin)

    async def get(self, name: str) -> OrganizationPublic:
        org = await self.organizations.get_by_slug(slug_of(name), active_only=False)
        if org is None or org["state"] not in VISIBLE:
            raise NotFound(f"Organization '{name}' not found")
        return public(org)

    async def update(self, tenant: TenantContext, data: OrganizationUpdate, step_up: StepUp
                     ) -> OrganizationUpdated:
        org = tenant.organization
        old_slug, new = slug_of(data.old_organization_name), OrganizationIdentity.of(
            data.new_organization_name)
        if not await self._retries_last_rename(org, old_slug, new.slug):
            require_own(org["slug"], old_slug)
        change = await self.credentials.prepare(
            tenant, email=str(data.email) if data.email is not None else None,
            password=data.password, current_password=data.current_password, step_up=step_up)
        if new.slug != org["slug"]:
            # The organization is re-read once the rename holds its journal slot: if it is
            # no longer what this request saw, the rename is refused and moves nothing.
            org = await self.lifecycle.rename(org["_id"], from_slug=org["slug"], to=new)
        elif new.name != org["organization_name"]:
            renamed = await self.organizations.update(
                org["_id"], {"organization_name": new.name},
                expect={"state": ACTIVE, "slug": org["slug"]})
            if renamed is None:
                raise Stale()
            org = renamed
        pending = await self.credentials.apply(tenant, change)
        return OrganizationUpdated(**public(org).model_dump(), pending_email=pending)

    async def delete(self, target: DeleteTarget, name: str) -> OrganizationDeleted:
        if target.finished is not None:
            op = target.finished
            require_own(op["slug"], slug_of(name))
            await self.lifecycle.resume_delete(op)
        else:
            assert target.tenant is not None
            tenant = target.tenant
            require_own(tenant.organization["slug"], slug_of(name))
            op = await self.lifecycle.delete(
                tenant.organization["_id"], slug=tenant.organization["slug"],
                admin=tenant.member)
        return OrganizationDeleted(id=str(op["organization_id"]), organization_name=op["name"],
                                   collection_name=op["collection_name"])

    async def _retries_last_rename(self, org: Document, old_slug: str, new_slug: str) -> bool:
        """Whether old -> new is a retry of the organization's last rename, which already
        happened (perhaps finished by recovery): it answers 200 without moving anything.
        Only the name it had right before (`previous_slug`, recorded when the rename
        completed), only towards its current name, and only while no other organization
        holds that name now: otherwise the old name is someone else's organization, and
        its "rename" must be refused and audited as denied, not as a success."""
        if old_slug == org["slug"] or new_slug != org["slug"]:
            return False
        if old_slug != org.get("previous_slug"):
            return False
        holder = await self.lifecycle.claims.owner(old_slug)
        return holder is None or holder["organization_id"] == org["_id"]
