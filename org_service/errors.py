"""Typed service errors and the one place that renders every error as JSON.

Every error body has the same shape: ``{"error": <code>, "detail": <message>}``, plus
``errors`` (a list of field problems) for validation failures and ``request_id`` on a 500.

A database error is a 503 (retry) only when it is transient; any other is a 500: a client
told to retry an error that will recur would retry forever.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    WTimeoutError,
)
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from org_service.organizations import errors as lifecycle

log = logging.getLogger(__name__)


class FieldProblem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    error: str
    detail: str
    errors: list[FieldProblem] | None = None
    request_id: str | None = None


class ServiceError(Exception):
    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


class BadRequest(ServiceError):
    status_code = 400
    code = "bad_request"


class Unauthorized(ServiceError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, detail: str = "Invalid or expired credentials") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class SessionEnded(Unauthorized):
    """A refresh token (or the session of an access token) that no longer starts anything:
    logged out, revoked, expired, idle too long, or ended for a reused refresh token."""

    code = "session_ended"

    def __init__(self, detail: str = "This session has ended; log in again") -> None:
        super().__init__(detail)


class Forbidden(ServiceError):
    status_code = 403
    code = "forbidden"


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"


class Conflict(ServiceError):
    status_code = 409
    code = "conflict"


class Gone(ServiceError):
    """It existed, and is over for good (an expired invitation): asking again will not help."""

    status_code = 410
    code = "gone"


class PreconditionFailed(ServiceError):
    status_code = 412
    code = "precondition_failed"


class PayloadTooLarge(ServiceError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(ServiceError):
    status_code = 415
    code = "unsupported_media_type"


class Unprocessable(ServiceError):
    status_code = 422
    code = "validation_error"


class InvalidInput(Unprocessable):
    """Input that passed the schema but breaks a rule only code can check (record keys,
    query operators): the same 422 body as a schema violation, each problem listed."""

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        super().__init__(_invalid_detail(problems))
        self.problems = problems


def _invalid_detail(problems: list[dict[str, Any]]) -> str:
    return "Invalid request: " + ", ".join(
        ".".join(str(part) for part in problem["loc"]) for problem in problems[:5])


class StepUpRequired(Unauthorized):
    """RFC 9470: the token is valid, but its login is too old for this action."""

    code = "insufficient_user_authentication"

    def __init__(self, max_age_seconds: int | None) -> None:
        if max_age_seconds is None:  # only the current password will do
            detail = "Changing the email or password needs current_password"
            challenge = ('Bearer error="insufficient_user_authentication", '
                         'error_description="The current password is required"')
        else:
            detail = (f"Changing the email or password needs a login within the last "
                      f"{max_age_seconds} seconds: log in again, or send current_password")
            challenge = ('Bearer error="insufficient_user_authentication", '
                         'error_description="A more recent login is required", '
                         f"max_age={max_age_seconds}")
        ServiceError.__init__(self, detail, headers={"WWW-Authenticate": challenge})


class InvalidCurrentPassword(Forbidden):
    code = "invalid_current_password"


class MemberSuspended(Forbidden):
    code = "member_suspended"

    def __init__(self) -> None:
        super().__init__("This member is suspended: an owner or admin of the organization can "
                         "reactivate them")


class WrongLoginRoute(Forbidden):
    code = "use_auth_login"

    def __init__(self) -> None:
        super().__init__("/admin/login is for owners and admins: log in at /auth/login")


class EmailUnverified(Forbidden):
    code = "email_unverified"

    def __init__(self) -> None:
        super().__init__("This account's email is not verified yet: follow the link mailed to "
                         "it, or ask for a new one with POST /auth/verify-email/resend "
                         '{"email": ...}')


class PermissionDenied(Forbidden):
    code = "permission_denied"


# What every tenant route may answer: no valid token (401), a role without the route's
# permission, a suspended member or a mismatched X-Organization-ID (403).
TENANT_ERRORS: tuple[type[ServiceError], ...] = (Unauthorized, Forbidden)


class TooManyRequests(ServiceError):
    status_code = 429
    code = "too_many_requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})


class ServiceUnavailable(ServiceError):
    status_code = 503
    code = "service_unavailable"

    def __init__(self, detail: str, *, retry_after: int = 5) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})


class TenantBusy(ServiceUnavailable):
    """The organization is being renamed: its requests wait (retry) until the move is over."""

    def __init__(self, organization_id: str, *, retry_after: int = 1) -> None:
        super().__init__("The organization is being renamed; retry shortly",
                         retry_after=retry_after)
        self.organization_id = organization_id


class DeadlineExceeded(ServiceUnavailable):
    """A tenant write would start after its request's deadline (TENANT_REQUEST_TIMEOUT_MS):
    nothing was written; a retry gets a fresh deadline."""

    def __init__(self, *, retry_after: int = 1) -> None:
        super().__init__("The request ran past its deadline before it could write; nothing "
                         "was written, retry", retry_after=retry_after)


def lifecycle_busy() -> Conflict:
    return Conflict("Another rename, delete or index change of this organization is in "
                    "progress")


def name_taken(name: str) -> Conflict:
    return Conflict(f"An organization named '{name}' (or a name with the same slug) exists")


def as_service_error(exc: Exception) -> ServiceError | None:
    """What an exception means to the caller: a ServiceError as it is, a domain error of the
    lifecycle translated here (the one place), anything else None."""
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, lifecycle.NameTaken):
        return name_taken(exc.name)
    if isinstance(exc, lifecycle.Busy):
        return lifecycle_busy()
    if isinstance(exc, lifecycle.Stale):
        return Conflict("The organization was renamed or deleted since this request was "
                        "made; nothing was changed")
    if isinstance(exc, lifecycle.CollectionTaken):
        return Conflict(f"The collection '{exc.name}' already exists")
    if isinstance(exc, lifecycle.Inconsistent):
        return Conflict("The organization's collection is not where it should be; nothing "
                        "was changed (an operator has to look)")
    if isinstance(exc, lifecycle.NotParked):
        return NotFound(f"No deleted organization {exc.organization_id} can be restored"
                        f"{': ' + exc.why if exc.why else ''}")
    if isinstance(exc, lifecycle.EmailsTaken):
        return Conflict("These members' emails belong to other organizations now: "
                        f"{', '.join(exc.emails)} (restore without them: "
                        "--skip-conflicting-members)")
    if isinstance(exc, lifecycle.LeaseLost):
        return ServiceUnavailable("The operation was taken over by recovery; retry to see "
                                  "its outcome", retry_after=1)
    return None


# Server error codes that mean "the server or the network, not the request": the retryable
# codes of the retryable reads/writes specs (pymongo.helpers_shared._RETRYABLE_ERROR_CODES,
# which covers SDAM's not-primary and node-is-recovering codes) and the time limits.
RETRYABLE_CODES: frozenset[int] = frozenset({
    6,  # HostUnreachable
    7,  # HostNotFound
    50,  # MaxTimeMSExpired
    64,  # WriteConcernFailed (wtimeout)
    89,  # NetworkTimeout
    91,  # ShutdownInProgress
    134,  # ReadConcernMajorityNotAvailableYet
    189,  # PrimarySteppedDown
    262,  # ExceededTimeLimit
    9001,  # SocketException
    10058,  # LegacyNotPrimary
    10107,  # NotWritablePrimary
    11600,  # InterruptedAtShutdown
    11602,  # InterruptedDueToReplStateChange
    13435,  # NotPrimaryNoSecondaryOk
    13436,  # NotPrimaryOrSecondary
})
# Labels the server or driver puts on errors that a retry may get past.
TRANSIENT_LABELS = ("RetryableWriteError", "TransientTransactionError",
                    "SystemOverloadedError", "RetryableError")


def is_transient(exc: PyMongoError) -> bool:
    """Whether a database error may go away on a retry (503) or will recur (500)."""
    # Network errors, server selection and pool timeouts, not-primary (AutoReconnect and its
    # subclasses), and any client-side (CSOT) timeout.
    if isinstance(exc, ConnectionFailure | ExecutionTimeout | WTimeoutError) or exc.timeout:
        return True
    if any(exc.has_error_label(label) for label in TRANSIENT_LABELS):
        return True
    if isinstance(exc, BulkWriteError):
        # Write errors (duplicates, validation) recur; a write concern error may not.
        details = exc.details or {}
        concern = details.get("writeConcernErrors") or []
        return not details.get("writeErrors") and any(
            e.get("code") in RETRYABLE_CODES for e in concern)
    return isinstance(exc, OperationFailure) and exc.code in RETRYABLE_CODES


def responses(*errors: type[ServiceError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for a route: each error it may raise, with the shared body."""
    documented: dict[int | str, dict[str, Any]] = {
        422: {"model": ErrorResponse, "description": "The request is malformed"},
        500: {"model": ErrorResponse,
              "description": "An unexpected error; quote request_id when reporting it"},
        503: {"model": ErrorResponse, "description": "The database is unavailable; retry"},
    }
    for error in errors:
        documented[error.status_code] = {"model": ErrorResponse, "description": error.code}
    return documented


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def render(error: ServiceError) -> JSONResponse:
    """The one JSON body of every error answer."""
    problems = error.problems if isinstance(error, InvalidInput) else None
    return _render(error.status_code, error.code, error.detail, error.headers, problems)


def _render(status: int, code: str, detail: str, headers: dict[str, str] | None = None,
            errors: list[dict[str, Any]] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": code, "detail": detail}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers)


def _field_problems(exc: RequestValidationError) -> list[dict[str, Any]]:
    # The offending input is never echoed: it may be a password, a NaN that JSON cannot
    # carry, or megabytes of text.
    problems = []
    for err in exc.errors():
        msg = str(err.get("msg", "invalid"))
        ctx = err.get("ctx") or {}
        if err.get("type") == "json_invalid" and ctx.get("error"):
            msg = f"Invalid JSON: {ctx['error']}"
        problems.append({
            "loc": [p if isinstance(p, int) else str(p) for p in err.get("loc", ())],
            "msg": msg,
            "type": str(err.get("type", "value_error")),
        })
    return problems


def allowed_methods(request: Request) -> list[str]:
    """Every method of every route on this request's path. Starlette's 405 names only the
    methods of the first route that matched the path, and a path here is often split over
    several routes (GET and POST /org/records/{kind} are two), so its `Allow` was short."""
    scope = {**request.scope, "method": "GET"}  # matched on the path alone
    methods: set[str] = set()
    for route in request.app.router.routes:
        route_methods = getattr(route, "methods", None)
        if route_methods and route.matches(scope)[0] is not Match.NONE:
            methods |= route_methods
    return sorted(methods)


def install_error_handlers(app: FastAPI, *, retry_after: int) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
        return render(exc)

    @app.exception_handler(lifecycle.LifecycleError)
    async def _lifecycle_error(_: Request, exc: lifecycle.LifecycleError) -> JSONResponse:
        if isinstance(exc, lifecycle.Inconsistent):
            log.error("lifecycle operation stopped: %s", exc)
        error = as_service_error(exc)
        assert error is not None  # every LifecycleError has its answer above
        return render(error)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return render(InvalidInput(_field_problems(exc)))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return _render(exc.status_code, code, str(exc.detail), headers)

    @app.exception_handler(DuplicateKeyError)
    async def _duplicate(_: Request, exc: DuplicateKeyError) -> JSONResponse:
        # Services translate the duplicates they expect; this is the safety net.
        return _render(409, "conflict", "A resource with these unique fields already exists")

    @app.exception_handler(PyMongoError)
    async def _database_error(request: Request, exc: PyMongoError) -> JSONResponse:
        request_id = getattr(request.state, "request_id", None)
        code = getattr(exc, "code", None)
        if is_transient(exc):
            log.warning("database unavailable: %s (code %s): %s", type(exc).__name__, code,
                        exc, extra={"request_id": request_id})
            return _render(503, "service_unavailable",
                           "The database is unavailable; retry later",
                           {"Retry-After": str(retry_after)})
        # Not the client's to retry: say so, and give them the id that finds the cause in
        # the log (the message may hold data of the request; it stays in the log).
        log.error("database error: %s (code %s): %s", type(exc).__name__, code, exc,
                  exc_info=exc, extra={"request_id": request_id})
        return internal_error_response(request_id)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return internal_error_response()


def internal_error_response(request_id: str | None = None) -> JSONResponse:
    if request_id is None:
        return _render(500, "internal_error", "Internal server error")
    body = {"error": "internal_error", "request_id": request_id,
            "detail": "Internal server error; quote the request_id when reporting it"}
    return JSONResponse(body, status_code=500)
