"""The application: lifespan (database, services), routers, error handlers, middleware."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from pymongo.errors import PyMongoError
from starlette.types import ASGIApp

from org_service import health
from org_service.admission import (
    AdmitRequests,
    ReleaseAdmission,
    RequestAdmission,
    TenantAdmission,
)
from org_service.audit import endpoints as audit_endpoints
from org_service.audit.repository import AuditRepository
from org_service.audit.service import AuditLog
from org_service.auth import endpoints as auth_endpoints
from org_service.auth.credentials import Credentials
from org_service.auth.repository import LoginFailureRepository
from org_service.auth.service import AuthService
from org_service.auth.throttle import (
    CreateThrottle,
    InvitationThrottle,
    LoginThrottle,
    ResetThrottle,
    VerificationThrottle,
)
from org_service.body_limit import JSONPayloadTooLarge
from org_service.config import Settings, get_settings, settings_or_exit
from org_service.db import Mongo, create_client
from org_service.deps import Services
from org_service.embedded import EmbeddedMongo, publish_url, withdraw_url
from org_service.errors import install_error_handlers
from org_service.invitations import endpoints as invitation_endpoints
from org_service.invitations.repository import InvitationRepository
from org_service.invitations.service import InvitationService
from org_service.keys import ServiceKeys
from org_service.members import endpoints as member_endpoints
from org_service.members.repository import MemberRepository
from org_service.members.service import MemberService
from org_service.observability import Metrics, ObservabilityMiddleware, configure_logging
from org_service.openapi import complete
from org_service.operations.operator import Operator
from org_service.operations.restore import Restorer
from org_service.operations.restore import register as register_restore
from org_service.organizations import endpoints as organization_endpoints
from org_service.organizations.lifecycle import LifecycleManager
from org_service.organizations.repository import (
    IdempotencyKeys,
    OrganizationRepository,
    TenantCollections,
)
from org_service.organizations.service import OrganizationService
from org_service.outbox.messages import Outbox
from org_service.outbox.repository import OutboxRepository
from org_service.outbox.sender import OutboxSender, transport_for
from org_service.pagination import CursorCodec
from org_service.records import endpoints as record_endpoints
from org_service.records.repository import RecordRepository
from org_service.records.service import RecordService
from org_service.recovery import endpoints as recovery_endpoints
from org_service.recovery.repository import PasswordResetRepository
from org_service.recovery.service import PasswordResetService
from org_service.security import PasswordHasher, TokenCodec
from org_service.sessions import endpoints as session_endpoints
from org_service.sessions.repository import SessionRepository
from org_service.sessions.service import SessionService
from org_service.tenancy import CollectionHints
from org_service.verification import endpoints as verification_endpoints
from org_service.verification.repository import EmailVerificationRepository
from org_service.verification.service import EmailVerificationService

log = logging.getLogger("org_service")


def build_services(settings: Settings, mongo: Mongo,
                   admission: TenantAdmission | None = None) -> Services:
    hasher = PasswordHasher(settings.BCRYPT_ROUNDS, queue_max=settings.HASH_QUEUE_MAX)
    tokens = TokenCodec(settings.JWT_SECRET_KEY.get_secret_value(),
                        settings.ACCESS_TOKEN_MINUTES)
    organizations = OrganizationRepository(mongo.master)
    members = MemberRepository(mongo.master)
    collections = TenantCollections(mongo.master)
    login_failures = LoginFailureRepository(mongo.master)
    throttle = LoginThrottle(login_failures, settings)
    # The token secret is used raw only for tokens; every other key is derived from it.
    keys = ServiceKeys.from_secret(settings.JWT_SECRET_KEY.get_secret_value())
    sessions = SessionService(SessionRepository(mongo.master), members, tokens,
                              keys.refresh_rotation, settings)
    outbox_repository = OutboxRepository(mongo.master)
    sender = OutboxSender(outbox_repository, transport_for(settings), settings)
    outbox = Outbox(outbox_repository, wake=sender.wake)
    verification = EmailVerificationService(
        links=EmailVerificationRepository(mongo.master), members=members, sessions=sessions,
        outbox=outbox, throttle=VerificationThrottle(login_failures, settings),
        url_template=settings.EMAIL_VERIFICATION_URL_TEMPLATE,
        hours=settings.EMAIL_VERIFICATION_HOURS)
    credentials = Credentials(members, hasher, sessions, verification)
    # One signing key for every pagination cursor (records, audit).
    cursors = CursorCodec(keys.cursor)
    lifecycle = LifecycleManager.on(mongo.master, settings, organizations=organizations,
                                    members=members, collections=collections)
    audit_repository = AuditRepository(
        mongo.master, retention_seconds=settings.AUDIT_RETENTION_DAYS * 24 * 3600)
    # A restore (org-service restore) whose process died is finished or undone by the
    # API's recovery like any other lifecycle operation.
    # The operator's pieces over the API's lifecycle: one restore window (its purge and
    # restore recovery) for the sweep and for a backup restore's recovery alike.
    operator = Operator(settings, mongo.master, lifecycle)
    register_restore(lifecycle, Restorer(operator))
    auth = AuthService(members=members, organizations=organizations, hasher=hasher,
                       sessions=sessions, throttle=throttle,
                       require_verified_email=settings.REQUIRE_VERIFIED_EMAIL)
    member_service = MemberService(members, hasher, credentials, cursors, sessions)
    return Services(
        settings=settings,
        mongo=mongo,
        hasher=hasher,
        tokens=tokens,
        organization_repository=organizations,
        member_repository=members,
        login_failure_repository=login_failures,
        lifecycle=lifecycle,
        organizations=OrganizationService(
            organizations=organizations, members=members, lifecycle=lifecycle,
            keys=IdempotencyKeys(mongo.master, settings.IDEMPOTENCY_KEY_TTL_SECONDS),
            hasher=hasher, credentials=credentials,
            fingerprint_secret=keys.idempotency_fingerprint),
        auth=auth,
        members=member_service,
        sessions=sessions,
        login_throttle=throttle,
        create_throttle=CreateThrottle(login_failures, settings),
        audit=AuditLog(audit_repository, cursors,
                       collapse_seconds=settings.AUDIT_COLLAPSE_SECONDS),
        window=operator.window,
        records=RecordService(RecordRepository(
            mongo.master, max_time_ms=settings.QUERY_MAX_TIME_MS,
            export_batch_size=settings.EXPORT_BATCH_SIZE,
            index_build_timeout=settings.INDEX_BUILD_TIMEOUT_SECONDS,
            response_bytes=settings.MAX_RESPONSE_BYTES,
            max_record_bytes=settings.MAX_RECORD_BYTES), settings, cursors,
            lifecycle, organizations),
        collection_hints=CollectionHints(),
        admission=admission or TenantAdmission(settings.MAX_TENANT_REQUESTS_IN_FLIGHT),
        invitations=InvitationService(
            invitations=InvitationRepository(mongo.master), members=members,
            member_rules=member_service, organizations=organizations, hasher=hasher,
            outbox=outbox, auth=auth, throttle=InvitationThrottle(login_failures, settings),
            cursors=cursors, url_template=settings.INVITE_URL_TEMPLATE),
        outbox=outbox,
        outbox_sender=sender,
        password_resets=PasswordResetService(
            resets=PasswordResetRepository(mongo.master), members=members, hasher=hasher,
            sessions=sessions, outbox=outbox,
            throttle=ResetThrottle(login_failures, settings),
            url_template=settings.PASSWORD_RESET_URL_TEMPLATE,
            minutes=settings.PASSWORD_RESET_MINUTES),
        email_verification=verification,
    )


async def prepare_database(services: Services) -> None:
    await services.organization_repository.ensure_indexes()
    await services.member_repository.ensure_indexes()
    copied = await services.member_repository.migrate_admins()
    if copied:
        log.warning("made %d admin(s) of the first version members", copied)
    await services.login_failure_repository.ensure_indexes()
    await services.sessions.sessions.ensure_indexes()
    await services.audit.repository.ensure_indexes()
    await services.lifecycle.journal.ensure_indexes()
    await services.lifecycle.owners.ensure_indexes()
    await services.lifecycle.deleted.ensure_indexes()
    await services.organizations.keys.ensure_indexes()
    await services.invitations.invitations.ensure_indexes()
    await services.outbox.repository.ensure_indexes()
    await services.password_resets.resets.ensure_indexes()
    await services.email_verification.links.ensure_indexes()
    # Organizations from before slug claims and collection owners existed get theirs
    # (idempotent).
    await services.lifecycle.adopt_unclaimed()


async def sweep(services: Services) -> None:
    """Finish or undo lifecycle operations whose process died, and purge what is due.
    (Idempotency keys of a
    create that died stay pending until a retry adopts them or their TTL removes them.)"""
    handled = await services.lifecycle.recover()
    if handled:
        log.warning("recovered %d interrupted lifecycle operation(s)", handled)
    # Deleted organizations whose restore window is over (each process may: the journal
    # slot and a compare-and-set on the parked document pick one per organization).
    await services.window.purge_due()


async def _maintain(services: Services, ready: asyncio.Event) -> None:
    # The API starts even when the database is down (answering 503) and catches up later:
    # indexes, then recovery of interrupted operations, then a periodic sweep.
    settings = services.settings
    prepared = False
    while True:
        try:
            if not prepared:
                await prepare_database(services)
                prepared = True
            await sweep(services)
            ready.set()
            await asyncio.sleep(settings.LIFECYCLE_SWEEP_SECONDS)
        except PyMongoError as exc:
            log.warning("database not ready (%s); retrying in %ss", exc,
                        settings.RETRY_AFTER_SECONDS)
            await asyncio.sleep(settings.RETRY_AFTER_SECONDS)


def add_routes(app: FastAPI, router: APIRouter) -> None:
    """Put a router's routes on the app itself, as `include_router` did before FastAPI 0.137.

    Since then an included router stays a node of its own, matched route by route through
    a per-request layer of context bookkeeping: some 70 µs of CPU on every request to a
    route in the third router here (measured in-process). Our routers carry
    everything on their routes already (prefix, tags, responses, route class, body limits),
    which is all `include_router` would add, so nothing is lost."""
    app.router.routes.extend(router.routes)


# Every router of the API, by domain.
ROUTERS: tuple[APIRouter, ...] = (
    organization_endpoints.router, auth_endpoints.router, auth_endpoints.member_router,
    member_endpoints.router, member_endpoints.me_router, session_endpoints.public_router,
    session_endpoints.router, record_endpoints.router, audit_endpoints.router,
    invitation_endpoints.router, invitation_endpoints.public_router,
    recovery_endpoints.router, verification_endpoints.router,
    verification_endpoints.me_router, health.router)

# Always answered, however loaded the process: an orchestrator must see it alive.
EXEMPT_FROM_ADMISSION = frozenset({"/health", "/ready", "/metrics"})


class OrgServiceAPI(FastAPI):
    admission: TenantAdmission
    request_admission: RequestAdmission

    def openapi(self) -> dict[str, Any]:
        # Built once, as FastAPI does; what every operation may answer is added in one place.
        if self.openapi_schema is None:
            complete(super().openapi(), unshed=EXEMPT_FROM_ADMISSION)
        return super().openapi()

    def build_middleware_stack(self) -> ASGIApp:
        return ReleaseAdmission(JSONPayloadTooLarge(super().build_middleware_stack()),
                                self.admission)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging()
    metrics = Metrics(organizations_max_age=settings.METRICS_REFRESH_SECONDS)

    @asynccontextmanager
    async def lifespan(app: OrgServiceAPI) -> AsyncIterator[None]:
        embedded: EmbeddedMongo | None = None
        url = settings.MONGODB_URL
        if not url:
            data_dir = settings.embedded_storage_path
            embedded = EmbeddedMongo(str(data_dir)).start()
            url = embedded.url
            publish_url(settings.EMBEDDED_DATA_DIR, url)
            log.warning("MONGODB_URL is not set: started embedded SecantusDB on port %s with "
                        "data in %s (development only; it stops with the API)",
                        embedded.port, data_dir)
        mongo = Mongo(create_client(url, settings, [metrics.command_listener]),
                      settings.MASTER_DB_NAME)
        services = build_services(settings, mongo, app.admission)
        app.state.services = services
        recovered = asyncio.Event()
        maintaining = asyncio.create_task(_maintain(services, recovered))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(recovered.wait(), settings.MONGODB_TIMEOUT_MS / 1000)
        if settings.OUTBOX_SENDER_ENABLED:
            if settings.smtp_target is None:
                log.warning("SMTP_URL is not set: mail (invitation, password reset and "
                            "verification links included) is written to the log, not sent "
                            "(development only)")
            services.outbox_sender.start()
        try:
            yield
        finally:
            await services.outbox_sender.stop()
            maintaining.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await maintaining
            await services.lifecycle.close()
            await mongo.close()
            if embedded is not None:
                withdraw_url(settings.EMBEDDED_DATA_DIR, embedded.url)
                embedded.stop()

    app = OrgServiceAPI(
        title="org_service",
        version="0.1.0",
        summary="Multi-tenant organization backend: one MongoDB collection per organization.",
        lifespan=lifespan,
        max_body_size=settings.MAX_BODY_BYTES,
        # A path with a trailing slash is an unknown path (the JSON 404 of any other), not a
        # 307 with an empty body: a client that does not follow it gets no answer it can read,
        # and one that does sends the request (and its body) a second time.
        redirect_slashes=False,
    )
    app.admission = TenantAdmission(settings.MAX_TENANT_REQUESTS_IN_FLIGHT)
    app.request_admission = RequestAdmission(
        settings.MAX_REQUESTS_IN_FLIGHT, settings.REQUEST_QUEUE_LIMIT,
        settings.REQUEST_QUEUE_TIMEOUT_MS / 1000)
    metrics.watch_admission(app.request_admission)
    app.state.metrics = metrics
    install_error_handlers(app, retry_after=settings.RETRY_AFTER_SECONDS)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type", "X-Organization-ID",
                           "X-Request-ID", "Idempotency-Key", "If-Match"],
        )
    for router in ROUTERS:
        add_routes(app, router)
    # Inside the request log and metrics (a shed request is logged and counted like any
    # other), outside everything that reads a request.
    app.add_middleware(AdmitRequests, admission=app.request_admission,
                       retry_after=1, exempt=EXEMPT_FROM_ADMISSION)
    # Added last, so it runs outermost of the user middleware: it sees every request and
    # stamps its id on every answer, CORS preflights included.
    app.add_middleware(ObservabilityMiddleware, metrics=metrics)
    return app


# What `uvicorn org_service.main:app` serves: a bad configuration stops it here, with one
# line per problem and exit status 2.
app = create_app(settings_or_exit())
