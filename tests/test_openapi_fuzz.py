"""Schemathesis over the app's own OpenAPI document, in process (ASGI, no network), as
`st run --checks all --phases examples,coverage,fuzzing,stateful` runs it against a live
server: every check (no 5xx, status codes, content types, response schemas and headers,
schema-valid data accepted, schema-invalid data refused, 405 with the path's methods in
`Allow`, missing required headers refused...), every phase, the stateful one following the
links between operations (create an organization -> log in -> records -> change them).
Operations join by being in the document: nothing here lists them."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events
from schemathesis.python import asgi

from org_service.main import create_app
from tests.st_session import Post, Session, auth_provider

SEED = 20261130
# Bounded, so the whole run stays near a minute on one worker: the coverage phase is
# deterministic and complete; fuzzing draws this many cases per operation and mode.
CONFIG = {
    # The project's own settings, as `st run` reads them from the repository's root.
    **tomllib.loads((Path(__file__).parents[1] / "schemathesis.toml").read_text()),
    "seed": SEED,
    "workers": 1,
    "checks": {"enabled": True},
    "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True},
               "fuzzing": {"enabled": True}, "stateful": {"enabled": True}},
    "generation": {"max-examples": 8, "database": "none"},
    "suppress-health-check": ["all"],
}


@pytest.fixture(scope="module")
def api(settings: Any) -> Iterator[Any]:
    # An app instance of its own: schemathesis runs it (and its lifespan, hence its own
    # MongoDB client) on its own event loop, against the same database. Its login limits
    # are lifted: the fuzzer's failed logins come from one address, and would otherwise
    # lock the session's own login out (the throttle has tests of its own).
    app = create_app(settings.model_copy(update={
        "LOGIN_MAX_FAILURES_PER_ADDRESS": 10**6, "LOGIN_MAX_FAILURES_PER_EMAIL": 10**6,
        "LOGIN_EMAIL_CEILING": 10**6, "LOGIN_EMAIL_SLOWDOWN_AFTER": 10**6,
        "CREATE_MAX_PER_ADDRESS": 10**6, "PASSWORD_RESET_MAX_PER_ADDRESS": 10**6,
        "PASSWORD_RESET_MAX_PER_EMAIL": 10**6}))
    yield app
    asgi.shutdown_lifespans()


def _post(app: Any) -> Post:
    def post(path: str, body: dict[str, Any]) -> tuple[int, Any]:
        with asgi.get_client(app) as client:  # (entering it starts the app's lifespan once)
            response = client.post(path, json=body)
        return response.status_code, response.json()

    return post


# Schemathesis's own strategies use `random` (a Hypothesis deprecation, not ours to fix;
# the CLI shows no warnings as errors).
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
def test_every_check_and_phase_passes(api: Any) -> None:
    session = Session(_post(api))
    schema = schemathesis.openapi.from_asgi(
        "/openapi.json", api, config=SchemathesisConfig.from_dict(CONFIG))
    # Every operation, POST /org/delete included: the session starts a new organization
    # when the fuzzer has deleted its own.

    schema.auth()(auth_provider(session))

    failures: list[str] = []
    errors: list[str] = []
    tested: set[str] = set()
    phases: set[str] = set()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            tested.add(event.recorder.label)
            phases.add(event.phase.value)
            for checks in event.recorder.checks.values():
                failures += [f"{event.recorder.label}: {check.name}: "
                             f"{check.failure_info.failure.title}\n    "
                             f"{check.failure_info.code_sample}"
                             for check in checks if check.failure_info is not None]
        elif isinstance(event, events.NonFatalError | events.FatalError):
            errors.append(str(getattr(event, "info", event))[:4000])
    assert errors == []
    assert not failures, "\n".join(sorted(set(failures)))
    # It did run: every phase, over the operations (and the stateful scenarios).
    assert phases == {"examples", "coverage", "fuzzing", "stateful"}, phases
    assert len(tested) >= 40, tested
