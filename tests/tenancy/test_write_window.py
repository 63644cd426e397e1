"""A tenant write that would start past its request's deadline says so: a 503 that names the
deadline, not a rename that is not happening."""

from __future__ import annotations

import time

import pytest
from bson import ObjectId

from org_service.errors import DeadlineExceeded, ServiceUnavailable, TenantBusy
from org_service.security import TokenClaims
from org_service.tenancy import TenantContext


def _tenant(write_deadline: float) -> TenantContext:
    org_id, admin_id = ObjectId(), ObjectId()
    claims = TokenClaims(admin_id=str(admin_id), organization_id=str(org_id), role="admin",
                         version=1)
    return TenantContext(
        claims=claims, member={"_id": admin_id, "role": "owner", "organization_id": org_id},
        organization={"_id": org_id, "state": "active", "collection_name": "org_acme"},
        write_deadline=write_deadline)


def test_a_write_past_the_deadline_is_a_503_naming_the_deadline() -> None:
    tenant = _tenant(time.monotonic() - 0.001)
    with pytest.raises(DeadlineExceeded) as raised, tenant.write_window():
        pytest.fail("the write must not start")
    error = raised.value
    assert isinstance(error, ServiceUnavailable) and not isinstance(error, TenantBusy)
    assert error.status_code == 503 and int(error.headers["Retry-After"]) >= 1
    assert "deadline" in error.detail and "renam" not in error.detail


def test_a_write_within_the_deadline_runs() -> None:
    ran = False
    with _tenant(time.monotonic() + 60).write_window():
        ran = True
    assert ran
