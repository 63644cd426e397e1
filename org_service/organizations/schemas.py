from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from org_service.models import Email, Password, RequestModel
from org_service.naming import OrganizationName


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


class OrganizationDeleted(BaseModel):
    deleted: Literal[True] = True
    id: str
    organization_name: str
    collection_name: str
