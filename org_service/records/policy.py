"""Who may read and write each kind of record: a per-kind policy on top of the role table.

A role needs both the route's permission (`records:read`, `records:write`) and a place in
the kind's policy. Without a policy a kind is read by every role and written by owners,
admins and managers. Owners and admins are always in both lists (they set the policies), and
a role that writes a kind must read it. A member outside a kind's read list meets it nowhere:
its records answer 404 and the kind is left out of the listing and the export.

The policies live on the organization's document (`record_policies.<kind>`), which the
tenant lookup reads anyway: checking one costs no database round trip."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

from org_service.errors import NotFound, PermissionDenied
from org_service.records.schemas import PolicyRole, RecordPolicy
from org_service.roles import Role
from org_service.tenancy import TenantContext

Action = Literal["read", "write"]
ALWAYS = (Role.OWNER.value, Role.ADMIN.value)
POLICY_ROLES: tuple[PolicyRole, ...] = get_args(PolicyRole)
DEFAULT = RecordPolicy(read=["owner", "admin", "manager", "employee"],
                       write=["owner", "admin", "manager"])


def _ordered(roles: Sequence[str]) -> list[PolicyRole]:
    return [role for role in POLICY_ROLES if role in roles or role in ALWAYS]


def normalized(policy: RecordPolicy) -> RecordPolicy:
    """Owners and admins added, each list in role order, without repeats."""
    return RecordPolicy(read=_ordered(policy.read), write=_ordered(policy.write))


def stored_policy(tenant: TenantContext, kind: str) -> RecordPolicy | None:
    """The kind's policy as set, None while none is."""
    stored = (tenant.organization.get("record_policies") or {}).get(kind)
    return RecordPolicy(read=_ordered(stored["read"]), write=_ordered(stored["write"])) \
        if stored else None


def policy_of(tenant: TenantContext, kind: str) -> RecordPolicy:
    return stored_policy(tenant, kind) or DEFAULT


def hidden_kinds(tenant: TenantContext) -> list[str]:
    """The kinds the caller may not read (only kinds with a policy can be hidden)."""
    return [kind for kind, stored in (tenant.organization.get("record_policies") or {}).items()
            if tenant.role not in stored["read"]]


def require(tenant: TenantContext, kind: str, action: Action) -> None:
    policy = policy_of(tenant, kind)
    if tenant.role not in policy.read:
        # As if the kind did not exist: its records are none of the caller's business.
        raise NotFound(f"No records of kind '{kind}'")
    if action == "write" and tenant.role not in policy.write:
        raise PermissionDenied(f"Your role ({tenant.role}) may read but not write "
                               f"'{kind}' records (its policy: PUT /org/records/{kind}/policy)")
