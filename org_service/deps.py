"""The objects a request needs, built once in the lifespan and handed out by dependency."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

if TYPE_CHECKING:
    from org_service.admins.repository import AdminRepository, LoginFailureRepository
    from org_service.admins.service import AdminService
    from org_service.admins.throttle import CreateThrottle, LoginThrottle
    from org_service.admission import TenantAdmission
    from org_service.audit.service import AuditLog
    from org_service.config import Settings
    from org_service.db import Mongo
    from org_service.organizations.lifecycle import LifecycleManager
    from org_service.organizations.repository import (
        OrganizationRepository,
        TenantCollections,
    )
    from org_service.organizations.service import OrganizationService
    from org_service.records.service import RecordService
    from org_service.security import PasswordHasher, TokenCodec
    from org_service.tenancy import CollectionHints


@dataclass(slots=True)
class Services:
    settings: Settings
    mongo: Mongo
    hasher: PasswordHasher
    tokens: TokenCodec
    organizations: OrganizationRepository
    admins: AdminRepository
    collections: TenantCollections
    lifecycle: LifecycleManager
    organization_service: OrganizationService
    admin_service: AdminService
    login_failures: LoginFailureRepository
    login_throttle: LoginThrottle
    create_throttle: CreateThrottle
    audit: AuditLog
    records: RecordService
    collection_hints: CollectionHints
    admission: TenantAdmission


async def get_services(request: Request) -> Services:
    # async although it never awaits: FastAPI runs a plain `def` dependency in the thread
    # pool, a thread handoff on every request for one attribute read.
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated["Services", Depends(get_services)]
