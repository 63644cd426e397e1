"""Database errors are answered honestly: only a transient fault (the database unreachable,
a primary change, a timeout) is a 503 that tells the client to retry; any other database
error is a 500 carrying the request id, logged with its cause."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    CollectionInvalid,
    ConfigurationError,
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    InvalidOperation,
    NetworkTimeout,
    NotPrimaryError,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WaitQueueTimeoutError,
    WriteConcernError,
    WriteError,
    WTimeoutError,
)

from org_service.errors import RETRYABLE_CODES, as_service_error, is_transient
from org_service.organizations import errors as lifecycle
from tests.organizations.lifecycle_support import failing

TRANSIENT = [
    AutoReconnect("connection reset"),
    ConnectionFailure("refused"),
    ServerSelectionTimeoutError("no primary"),
    NetworkTimeout("timed out"),
    WaitQueueTimeoutError("pool exhausted"),
    NotPrimaryError("not primary", {"code": 10107}),
    ExecutionTimeout("operation exceeded time limit", 50),
    WTimeoutError("waiting for replication timed out", 64),
    OperationFailure("HostUnreachable", 6),
    OperationFailure("PrimarySteppedDown", 189),
    OperationFailure("ShutdownInProgress", 91),
    OperationFailure("InterruptedAtShutdown", 11600),
    OperationFailure("ExceededTimeLimit", 262),
    WriteConcernError("HostUnreachable", 6),
    OperationFailure("labelled", 251, {"errorLabels": ["TransientTransactionError"]}),
    OperationFailure("labelled", 2, {"errorLabels": ["RetryableWriteError"]}),
    OperationFailure("overloaded", 462, {"errorLabels": ["SystemOverloadedError"]}),
    BulkWriteError({"writeErrors": [], "writeConcernErrors": [
        {"code": 189, "errmsg": "primary stepped down"}]}),
]
PERMANENT = [
    OperationFailure("BadValue", 2),
    OperationFailure("IndexOptionsConflict", 85),
    OperationFailure("CannotCreateIndex", 67),
    OperationFailure("no code"),
    WriteError("Document failed validation", 121),
    DuplicateKeyError("E11000 duplicate key", 11000),
    BulkWriteError({"writeErrors": [{"index": 0, "code": 11000, "errmsg": "dup"}],
                    "writeConcernErrors": []}),
    CollectionInvalid("collection exists"),
    InvalidOperation("cursor already used"),
    ConfigurationError("bad URI option"),
    PyMongoError("something else"),
]


@pytest.mark.parametrize("error", TRANSIENT, ids=repr)
def test_transient_database_errors_are_recognised(error: PyMongoError) -> None:
    assert is_transient(error)


@pytest.mark.parametrize("error", PERMANENT, ids=repr)
def test_other_database_errors_are_not_transient(error: PyMongoError) -> None:
    assert not is_transient(error)


def test_the_retryable_codes_include_every_code_pymongo_retries() -> None:
    # PyMongo's own list (retryable reads/writes specs); private, so only checked here.
    from pymongo.helpers_shared import _RETRYABLE_ERROR_CODES

    assert RETRYABLE_CODES >= _RETRYABLE_ERROR_CODES


async def test_a_transient_database_fault_is_a_503_with_retry_after(
        client: httpx.AsyncClient, raw_client: Any) -> None:
    async with failing(raw_client, "find", code=6):
        response = await client.post("/org/get", json={"organization_name": "Acme"})
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json()["error"] == "service_unavailable"


async def test_a_non_transient_database_error_is_a_500_with_the_request_id(
        client: httpx.AsyncClient, raw_client: Any, caplog: pytest.LogCaptureFixture) -> None:
    # Code 2 (BadValue) will fail the same way on every retry: "retry later" would be a lie.
    with caplog.at_level(logging.ERROR, logger="org_service"):
        async with failing(raw_client, "find", code=2):
            response = await client.post("/org/get", json={"organization_name": "Acme"},
                                         headers={"X-Request-ID": "req-honest-1"})
    assert response.status_code == 500, response.text
    assert "Retry-After" not in response.headers
    body = response.json()
    assert body["error"] == "internal_error"
    assert body["request_id"] == "req-honest-1" == response.headers["X-Request-ID"]
    assert body["detail"]
    # The cause is logged (with the request id), not sent to the client.
    assert "failCommand" not in response.text and "Traceback" not in response.text
    logged = [r for r in caplog.records if getattr(r, "request_id", None) == "req-honest-1"
              and r.levelno >= logging.ERROR]
    assert logged, caplog.text
    assert "OperationFailure" in logged[0].getMessage()
    assert "failCommand" in logged[0].getMessage()


@pytest.mark.parametrize(("error", "status"), [
    (lifecycle.NameTaken("Acme"), 409), (lifecycle.Busy(), 409), (lifecycle.Stale(), 409),
    (lifecycle.CollectionTaken("org_acme"), 409), (lifecycle.Inconsistent("x"), 409),
    (lifecycle.LeaseLost("op"), 503),
])
def test_each_lifecycle_refusal_has_its_one_answer(error: Exception, status: int) -> None:
    answer = as_service_error(error)
    assert answer is not None and answer.status_code == status
    if status == 503:
        assert answer.headers["Retry-After"]


def test_every_kind_of_lifecycle_refusal_is_mapped() -> None:
    # A refusal added to organizations/errors.py without an answer in errors.py fails here.
    for kind in lifecycle.LifecycleError.__subclasses__():
        sample = kind.__new__(kind)
        # Whatever a refusal names (the test needs no constructor of each).
        for attribute, value in (("name", "x"), ("organization_id", "x"), ("why", ""),
                                 ("emails", ["a@example.com"])):
            setattr(sample, attribute, value)
        assert as_service_error(sample) is not None, kind.__name__
