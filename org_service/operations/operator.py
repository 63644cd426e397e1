"""What the operator's commands work with: the lifecycle pieces and repositories the API
builds (org_service/main.py), built here from one client, for a process that serves no
requests. Kept below the top layer: the CLI must not import the app."""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from functools import cached_property

from bson import ObjectId
from pydantic import ValidationError
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from org_service.audit.repository import AuditRepository
from org_service.auth.credentials import email_taken
from org_service.config import OperatorSettings
from org_service.db import Document
from org_service.errors import name_taken
from org_service.members.repository import MemberRepository
from org_service.naming import OrganizationIdentity, slug_of
from org_service.organizations.errors import NameTaken
from org_service.organizations.lifecycle import LifecycleManager
from org_service.organizations.repository import DeletedOrganizations, OrganizationRepository
from org_service.organizations.schemas import OrganizationCreate
from org_service.organizations.window import RestoreWindow
from org_service.security import PasswordHasher

AUDIT_LOG = "audit_log"


class OperatorError(Exception):
    """A command cannot do what it was asked (unknown name, a refusal): said in one line,
    exit code 1."""


def service_version() -> str:
    try:
        return importlib.metadata.version("org_service")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@dataclass
class Operator:
    settings: OperatorSettings
    db: AsyncDatabase[Document]
    lifecycle: LifecycleManager

    @classmethod
    def of(cls, db: AsyncDatabase[Document], settings: OperatorSettings) -> Operator:
        return cls(settings, db, LifecycleManager.on(db, settings))

    @property
    def organizations(self) -> OrganizationRepository:
        return self.lifecycle.organizations

    @property
    def members(self) -> MemberRepository:
        return self.lifecycle.members

    @property
    def audit(self) -> AsyncCollection[Document]:
        return self.db[AUDIT_LOG]

    @property
    def deleted(self) -> DeletedOrganizations:
        return self.lifecycle.deleted

    @cached_property
    def window(self) -> RestoreWindow:
        """Purge and restore of deleted organizations (its recovery joins the lifecycle's)."""
        return RestoreWindow(self.lifecycle, AuditRepository(
            self.db, retention_seconds=self.settings.AUDIT_RETENTION_DAYS * 24 * 3600))

    async def organization(self, name: str) -> Document:
        """The organization (any state) with this name's slug; OperatorError if none."""
        org = await self.organizations.get_by_slug(slug_of(name), active_only=False)
        if org is None:
            raise OperatorError(f"no organization named '{name}'")
        return org


async def create_tenant(operator: Operator, name: str, email: str, password: str
                        ) -> tuple[Document, Document]:
    """A new organization and its owner, as `POST /org/create` makes them (the same rules
    for name, email and password, the same journaled create); (organization, owner)."""
    try:
        data = OrganizationCreate(organization_name=name, email=email, password=password)
    except ValidationError as exc:
        raise OperatorError("; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
            for error in exc.errors())) from None
    identity, address = OrganizationIdentity.of(data.organization_name), str(data.email)
    if await operator.members.get_by_email(address):
        raise OperatorError(email_taken().detail)
    password_hash = await PasswordHasher(operator.settings.BCRYPT_ROUNDS).hash(data.password)
    try:
        return await operator.lifecycle.create(
            organization_id=ObjectId(), identity=identity, email=address,
            password_hash=password_hash)
    except NameTaken:
        raise OperatorError(name_taken(identity.name).detail) from None
    except DuplicateKeyError as exc:
        raise OperatorError(email_taken().detail if "email" in str(exc)
                            else name_taken(identity.name).detail) from None
