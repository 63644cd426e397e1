"""The people of an organization: the directory, adding and changing members, suspension,
the manager hierarchy and ownership. Every rule is checked against the database as it is
now: each change is a compare-and-set on what it read, and the one rule that spans members
(an organization keeps an active owner) is checked again after the change and undone if a
concurrent change broke it."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from org_service.auth.credentials import Credentials, StepUp, email_taken
from org_service.db import Document, object_id
from org_service.errors import (
    Conflict,
    MemberSuspended,
    NotFound,
    PermissionDenied,
    Unauthorized,
)
from org_service.members.repository import ACTIVE, SUSPENDED, MemberRepository, name_key
from org_service.members.schemas import (
    ATTRIBUTES_MAX_BYTES,
    REPORTS_MAX_DEPTH,
    MemberCount,
    MemberCreate,
    MemberPage,
    MemberPublic,
    MemberUpdate,
    MeUpdate,
    MeView,
    Report,
    ReportList,
    member_public,
)
from org_service.pagination import CursorCodec, Pager, SortOrder
from org_service.records.validation import check_shape, check_size, invalid, problem
from org_service.roles import RANKS, Role, allows, outranks_or_equals
from org_service.security import PasswordHasher
from org_service.sessions.service import REMOVED, REVOKED, SessionService
from org_service.sessions.service import SUSPENDED as SUSPENDED_SESSION
from org_service.tenancy import TenantContext

BY_ID = SortOrder(("_id",))


def _last_owner() -> Conflict:
    return Conflict("The organization must keep an active owner: make another member owner "
                    "first (POST /org/ownership/transfer)")


def _changed_meanwhile() -> Conflict:
    return Conflict("The member was changed by another request meanwhile: read it again and "
                    "retry")


class MemberService:
    def __init__(self, members: MemberRepository, hasher: PasswordHasher,
                 credentials: Credentials, cursors: CursorCodec, sessions: SessionService
                 ) -> None:
        self.members = members
        self.sessions = sessions
        self.hasher = hasher
        self.credentials = credentials
        self.cursors = cursors

    # -- reading -------------------------------------------------------------------------

    async def page(self, tenant: TenantContext, *, limit: int, after: str | None,
                   role: str | None = None, state: str | None = None,
                   manager_id: str | None = None, department: str | None = None,
                   q: str | None = None) -> MemberPage:
        org_id = tenant.organization["_id"]
        query: Document = {"organization_id": org_id}
        filters: dict[str, Any] = {"role": role, "state": state, "manager_id": manager_id,
                                   "department": department, "q": q}
        if role is not None:
            query["role"] = role
        if state is not None:
            query["state"] = state
        if manager_id is not None:
            query["manager_id"] = object_id(manager_id)
        if department is not None:
            query["department"] = department
        if q:
            prefix = "^" + re.escape(q.strip().casefold())
            query["$or"] = [{"name_key": {"$regex": prefix}},
                            {"email_key": {"$regex": prefix}}]
        # A cursor belongs to its organization and its filters: another listing refuses it.
        digest = hashlib.sha256(json.dumps(filters, sort_keys=True).encode()).hexdigest()
        scope = f"members:{org_id}:{digest[:16]}"
        pager = Pager(self.cursors, BY_ID, scope=scope, limit=limit, after=after)
        docs = await self.members.find(pager.filter(query), sort=pager.sort,
                                       limit=pager.fetch_limit)
        items, next_cursor = pager.page(docs)
        return MemberPage(items=[member_public(doc) for doc in items], next=next_cursor)

    async def get(self, tenant: TenantContext, member_id: str) -> Document:
        oid = object_id(member_id)
        member = (await self.members.get_in(tenant.organization["_id"], oid)
                  if oid is not None else None)
        if member is None:
            raise NotFound("No such member in your organization")
        return member

    async def counts(self, tenant: TenantContext) -> list[MemberCount]:
        rows = await self.members.counts(tenant.organization["_id"])
        counts = [MemberCount(role=row["_id"]["role"], count=row["count"],
                              state=row["_id"].get("state") or ACTIVE) for row in rows]
        return sorted(counts, key=lambda c: (-RANKS.get(c.role, 0), c.state))

    async def reports(self, tenant: TenantContext, member_id: str, *, all_levels: bool
                      ) -> ReportList:
        """Direct reports, or every report below the member (level by level, at most
        REPORTS_MAX_DEPTH levels; a member is listed once, at its shallowest level)."""
        member = await self.get(tenant, member_id)
        org_id = tenant.organization["_id"]
        seen: set[ObjectId] = {member["_id"]}
        found: list[Report] = []
        level: list[ObjectId] = [member["_id"]]
        for depth in range(1, (REPORTS_MAX_DEPTH if all_levels else 1) + 1):
            docs = [doc for doc in await self.members.reports_of(org_id, level)
                    if doc["_id"] not in seen]
            if not docs:
                break
            found += [Report(**member_public(doc).model_dump(), depth=depth) for doc in docs]
            seen.update(doc["_id"] for doc in docs)
            level = [doc["_id"] for doc in docs]
        return ReportList(items=found)

    # -- changing ------------------------------------------------------------------------

    async def create(self, tenant: TenantContext, data: MemberCreate) -> MemberPublic:
        self._may_grant(tenant, data.role)
        self._check_attributes(data.attributes)
        manager = await self._manager(tenant, data.manager_id, for_member=None)
        if await self.members.get_by_email(str(data.email)):
            raise email_taken()
        password_hash = await self.hasher.hash(data.password)
        await self._still_may_add(tenant, data.role)
        try:
            doc = await self.members.insert(
                email=str(data.email), password_hash=password_hash,
                organization_id=tenant.organization["_id"], role=data.role, name=data.name,
                manager_id=manager, title=data.title, department=data.department,
                attributes=data.attributes)
        except DuplicateKeyError:
            raise email_taken() from None
        return member_public(doc)

    async def update(self, tenant: TenantContext, member_id: str, data: MemberUpdate
                     ) -> tuple[MemberPublic, str | None]:
        """The member as changed, and its former role when the role changed."""
        member = await self.get(tenant, member_id)
        self._may_act_on(tenant, member)
        sent = data.model_fields_set
        changes: Document = {}
        for field in ("name", "title", "department"):
            if field in sent:
                if field == "name" and data.name is None:
                    raise invalid(problem(("body", "name"), "name cannot be removed"))
                changes[field] = getattr(data, field)
        if "name" in changes:
            changes["name_key"] = name_key(changes["name"])
        if "attributes" in sent:
            self._check_attributes(data.attributes or {})
            changes["attributes"] = data.attributes or {}
        if "manager_id" in sent:
            changes["manager_id"] = await self._manager(tenant, data.manager_id,
                                                        for_member=member["_id"])
        former_role = None
        if "role" in sent and data.role is not None and data.role != member["role"]:
            self._may_grant(tenant, data.role)
            changes["role"] = data.role
            former_role = member["role"]
        if not changes:
            return member_public(member), None
        changed = await self.members.change(member, changes)
        if changed is None:
            raise _changed_meanwhile()
        if former_role == Role.OWNER:
            await self._keep_an_owner(changed, undo={"role": former_role})
        return member_public(changed), former_role

    async def suspend(self, tenant: TenantContext, member_id: str) -> MemberPublic:
        member = await self.get(tenant, member_id)
        self._may_act_on(tenant, member)
        if member.get("state", ACTIVE) == SUSPENDED:
            return member_public(member)
        # The token version moves too: tokens from before stay dead after a reactivation.
        changed = await self.members.change(member, {"state": SUSPENDED}, bump_version=True)
        if changed is None:
            raise _changed_meanwhile()
        if member["role"] == Role.OWNER:
            await self._keep_an_owner(changed, undo={
                "state": ACTIVE, "token_version": member["token_version"]})
        await self.sessions.end_member(member["_id"], SUSPENDED_SESSION)
        return member_public(changed)

    async def reactivate(self, tenant: TenantContext, member_id: str) -> MemberPublic:
        member = await self.get(tenant, member_id)
        self._may_act_on(tenant, member)
        if member.get("state", ACTIVE) == ACTIVE:
            return member_public(member)
        changed = await self.members.change(member, {"state": ACTIVE})
        if changed is None:
            raise _changed_meanwhile()
        return member_public(changed)

    async def remove(self, tenant: TenantContext, member_id: str) -> Document:
        member = await self.get(tenant, member_id)
        self._may_act_on(tenant, member)
        removed = await self.members.remove(member)
        if removed is None:
            raise _changed_meanwhile()
        if member["role"] == Role.OWNER and member.get("state", ACTIVE) == ACTIVE and (
                await self.members.active_owners(member["organization_id"]) == 0):
            await self.members.restore(removed)
            raise _last_owner()
        # Their reports now report to whoever they reported to.
        await self.members.repoint_reports(member["organization_id"], member["_id"],
                                           member.get("manager_id"))
        await self.sessions.end_member(member["_id"], REMOVED)
        return member

    async def end_sessions(self, tenant: TenantContext, member_id: str) -> int:
        """End every session of a member of the organization; how many were live."""
        member = await self.get(tenant, member_id)
        self._may_act_on(tenant, member)
        # A new token version ends every access and refresh token the member holds.
        if await self.members.change(member, {}, bump_version=True) is None:
            raise _changed_meanwhile()
        return await self.sessions.end_member(member["_id"], REVOKED)

    async def transfer_ownership(self, tenant: TenantContext, member_id: str
                                 ) -> tuple[MemberPublic, MemberPublic]:
        """The new owner first, then the old one an admin: never a moment without one."""
        target = await self.get(tenant, member_id)
        if target["_id"] == tenant.member["_id"]:
            raise Conflict("You are the owner already: name another member")
        if target.get("state", ACTIVE) != ACTIVE:
            raise Conflict("A suspended member cannot become owner: reactivate them first")
        promoted = (target if target["role"] == Role.OWNER
                    else await self.members.change(target, {"role": Role.OWNER}))
        if promoted is None:
            raise _changed_meanwhile()
        demoted = await self.members.change(tenant.member, {"role": Role.ADMIN})
        if demoted is None:
            raise _changed_meanwhile()
        return member_public(promoted), member_public(demoted)

    async def update_me(self, tenant: TenantContext, data: MeUpdate, step_up: StepUp
                        ) -> MeView:
        change = await self.credentials.prepare(
            tenant, email=str(data.email) if data.email is not None else None,
            password=data.password, current_password=data.current_password, step_up=step_up,
            recent_login_suffices=False)
        changes: Document = {}
        if data.name is not None:
            changes.update(name=data.name, name_key=name_key(data.name))
        if "title" in data.model_fields_set:
            changes["title"] = data.title
        if changes:
            changed = await self.members.change(tenant.member, changes)
            if changed is None:
                raise _changed_meanwhile()
        pending = await self.credentials.apply(tenant, change)
        me = await self.get(tenant, tenant.member_id)
        if pending is None:
            pending = await self.credentials.verification.pending_email(me)
        return MeView(**member_public(me).model_dump(), pending_email=pending)

    # -- rules ---------------------------------------------------------------------------

    @staticmethod
    def _may_grant(tenant: TenantContext, role: str) -> None:
        if not outranks_or_equals(tenant.role, role):
            raise PermissionDenied(f"A member with role {tenant.role} cannot grant {role}")

    async def _still_may_add(self, tenant: TenantContext, role: str) -> None:
        """Checked again after the password hash (a quarter of a second): the adder may
        have been suspended, removed or demoted meanwhile."""
        actor = await self.members.get_in(tenant.organization["_id"], tenant.member["_id"])
        if actor is None:
            raise Unauthorized()
        if actor.get("state", ACTIVE) != ACTIVE:  # as the tenant lookup says it
            raise MemberSuspended()
        if actor.get("token_version") != tenant.claims.version:
            raise Unauthorized()
        if not allows(actor["role"], "members:manage") or not outranks_or_equals(
                actor["role"], role):
            raise PermissionDenied(f"Your role is now {actor['role']}: it cannot add a {role}")

    @staticmethod
    def _may_act_on(tenant: TenantContext, member: Document) -> None:
        if member["role"] == Role.OWNER and tenant.role != Role.OWNER:
            raise PermissionDenied("Only an owner can change an owner")

    @staticmethod
    def _check_attributes(attributes: Document) -> None:
        check_shape(attributes, ("body", "attributes"))
        check_size(attributes, ATTRIBUTES_MAX_BYTES, "attributes")

    async def valid_manager(self, tenant: TenantContext, manager_id: str | None
                            ) -> ObjectId | None:
        """The manager a new member may be given (404 when it is not an active member)."""
        return await self._manager(tenant, manager_id, for_member=None)

    async def _manager(self, tenant: TenantContext, manager_id: str | None, *,
                       for_member: ObjectId | None) -> ObjectId | None:
        """The manager to set: an active member of the same organization, and not below
        (or equal to) the member in the hierarchy."""
        if manager_id is None:
            return None
        manager = await self.members.get_in(tenant.organization["_id"], ObjectId(manager_id))
        if manager is None or manager.get("state", ACTIVE) != ACTIVE:
            # Like an id in a path that names nothing (a reference no schema can check).
            raise NotFound("manager_id names no active member of your organization")
        if for_member is not None:
            current: Document | None = manager
            for _ in range(REPORTS_MAX_DEPTH + 1):
                if current is None:
                    break
                if current["_id"] == for_member:
                    raise Conflict("manager_id: this manager reports to the member "
                                   "(or is the member); that would make a cycle")
                above = current.get("manager_id")
                current = (await self.members.get_in(tenant.organization["_id"], above)
                           if above is not None else None)
        found: ObjectId = manager["_id"]
        return found

    async def _keep_an_owner(self, changed: Document, *, undo: Document) -> None:
        """Checked after the change, not before: two owners demoting each other at once
        would each see the other still there. Undone (and 409) if none is left."""
        if await self.members.active_owners(changed["organization_id"]) > 0:
            return
        await self.members.change(changed, undo)
        raise _last_owner()
