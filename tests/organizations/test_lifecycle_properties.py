"""Property test: random interleavings of creates, renames, deletes and tenant document
writes across a few organizations keep the lifecycle invariants after every step (each
live organization resolves to exactly one collection, names are unique, no tenant's
documents sit in another's collection, counts equal what was acknowledged).

Hypothesis state machines are synchronous, so the app runs on an event loop of its own."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from bson import ObjectId
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from org_service.naming import slug_of
from tests.organizations.lifecycle_support import (
    assert_consistent,
    create,
    delete,
    fill,
    login_auth,
    rename,
    running,
    wipe,
)

NAMES = ["Acme", "acme", "Beta", "Gamma Co", "Delta"]
PROPERTY_DB = "org_service_properties"


def test_lifecycle_invariants_hold_under_random_interleavings(settings: Any) -> None:
    app_settings = settings.model_copy(update={
        "MASTER_DB_NAME": PROPERTY_DB, "TENANT_REQUEST_TIMEOUT_MS": 50,
        "LIFECYCLE_LEASE_SECONDS": 5, "LIFECYCLE_SWEEP_SECONDS": 3600})
    loop = asyncio.new_event_loop()
    app_context = running(app_settings)
    app = loop.run_until_complete(app_context.__aenter__())
    db = app.services.mongo.master
    emails = itertools.count()

    class Lifecycle(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            loop.run_until_complete(wipe(db))
            # name -> {"id", "auth", "count"} of every live organization
            self.live: dict[str, dict[str, Any]] = {}

        def run(self, coroutine: Any) -> Any:
            return loop.run_until_complete(coroutine)

        def holder_of(self, name: str) -> str | None:
            return next((n for n in self.live if slug_of(n) == slug_of(name)), None)

        @rule(name=st.sampled_from(NAMES))
        def create_organization(self, name: str) -> None:
            email = f"admin{next(emails)}@example.com"
            response = self.run(create(app.http, name, email))
            if self.holder_of(name) is not None:
                assert response.status_code == 409, response.text
                return
            assert response.status_code == 201, response.text
            auth = self.run(login_auth(app.http, email))
            self.live[name] = {"id": response.json()["id"], "auth": auth, "count": 0}

        @precondition(lambda self: self.live)
        @rule(data=st.data(), new_name=st.sampled_from(NAMES))
        def rename_organization(self, data: Any, new_name: str) -> None:
            name = data.draw(st.sampled_from(sorted(self.live)))
            org = self.live[name]
            response = self.run(rename(app.http, org["auth"], name, new_name))
            holder = self.holder_of(new_name)
            if holder is not None and holder != name:
                assert response.status_code == 409, response.text
                return
            assert response.status_code == 200, response.text
            assert response.json()["collection_name"] == f"org_{slug_of(new_name)}"
            self.live[new_name] = self.live.pop(name)

        @precondition(lambda self: self.live)
        @rule(data=st.data())
        def delete_organization(self, data: Any) -> None:
            name = data.draw(st.sampled_from(sorted(self.live)))
            response = self.run(delete(app.http, self.live[name]["auth"], name))
            assert response.status_code == 200, response.text
            del self.live[name]

        @precondition(lambda self: self.live)
        @rule(data=st.data(), count=st.integers(1, 5))
        def write_documents(self, data: Any, count: int) -> None:
            # Straight into the collection the organization resolves to right now.
            org = self.live[data.draw(st.sampled_from(sorted(self.live)))]
            self.run(_write(db, org["id"], count))
            org["count"] += count

        @invariant()
        def organizations_are_whole(self) -> None:
            self.run(assert_consistent(db, {o["id"]: o["count"] for o in self.live.values()}))

    try:
        run_state_machine_as_test(Lifecycle, settings=hypothesis_settings(
            max_examples=10, stateful_step_count=15, deadline=None, derandomize=True,
            suppress_health_check=list(HealthCheck)))
    finally:
        loop.run_until_complete(app_context.__aexit__(None, None, None))
        loop.close()


async def _write(db: Any, organization_id: str, count: int) -> None:
    org = await db["organizations"].find_one({"_id": ObjectId(organization_id)})
    await fill(db, organization_id, org["collection_name"], count)
