"""Who may do what: the roles of an organization's members and the one table of what each
role is permitted. Every protected route declares the permission it needs (`deps.require`);
the tenant context reads the member's role from the database on every request, never from
the token, so a demotion or suspension takes effect on the next request."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MANAGER = "manager"
    EMPLOYEE = "employee"


# Highest first: a member grants no role above their own.
RANKS: dict[str, int] = {Role.OWNER: 4, Role.ADMIN: 3, Role.MANAGER: 2, Role.EMPLOYEE: 1}
ROLE_NAMES: tuple[str, ...] = tuple(role.value for role in Role)
# What /admin/login (the seed's contract, for the people who run the organization) admits.
ADMIN_LOGIN_ROLES = frozenset({Role.OWNER, Role.ADMIN})

Permission = Literal[
    "org:update", "org:delete", "members:read", "members:manage", "records:read",
    "records:write", "records:policy", "indexes:manage", "audit:read", "stats:read",
    "org:transfer", "invitations:manage", "invitations:create",
]
PERMISSIONS: tuple[Permission, ...] = (
    "org:update", "org:delete", "members:read", "members:manage", "records:read",
    "records:write", "records:policy", "indexes:manage", "audit:read", "stats:read",
    "org:transfer", "invitations:manage", "invitations:create",
)

# The one table. Owner: everything. Admin: everything but deleting the organization and
# handing over its ownership. Manager: the directory, records, stats, and inviting
# employees who will report to them (invitations:create without :manage: only their own
# invitations). Employee: the directory and records.
ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    Role.OWNER: frozenset(PERMISSIONS),
    Role.ADMIN: frozenset(PERMISSIONS) - {"org:delete", "org:transfer"},
    Role.MANAGER: frozenset({"members:read", "records:read", "records:write", "stats:read",
                             "invitations:create"}),
    Role.EMPLOYEE: frozenset({"members:read", "records:read", "records:write"}),
}


def allows(role: str, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS.get(role, frozenset())


def outranks_or_equals(granter: str, role: str) -> bool:
    """Whether a member with role `granter` may grant (or act on a member with) `role`."""
    return RANKS.get(granter, 0) >= RANKS.get(role, 99)
