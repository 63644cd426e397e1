"""Every setting in one typed object, read from the environment and `.env`."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Self, get_args
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_SECRET_BYTES = 32
MIN_METRICS_TOKEN_CHARS = 16
SMTP_SCHEMES = {"smtp": 25, "smtps": 465}


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    """Where the outbox delivers mail, as SMTP_URL says it."""

    hostname: str
    port: int
    username: str | None
    password: str | None
    implicit_tls: bool  # smtps://: TLS from the first byte
    starttls: bool  # smtp://...?starttls=true: upgrade after EHLO, refuse to go on without

    def __repr__(self) -> str:  # never the password, whoever prints it
        return (f"SmtpTarget({self.hostname}:{self.port}, user={self.username!r}, "
                f"tls={self.implicit_tls}, starttls={self.starttls})")


def parse_smtp_url(url: str) -> SmtpTarget:
    """`smtp://[user:pass@]host[:port][?starttls=true]` or `smtps://...` (implicit TLS);
    ValueError naming what is wrong (never echoing the password)."""
    parts = urlsplit(url)
    if parts.scheme not in SMTP_SCHEMES:
        raise ValueError("must start with smtp:// or smtps://")
    try:
        port = parts.port or SMTP_SCHEMES[parts.scheme]
    except ValueError:
        raise ValueError("has a port that is not a number from 1 to 65535") from None
    if not parts.hostname:
        raise ValueError("names no host")
    options = parse_qs(parts.query, keep_blank_values=True)
    if set(options) - {"starttls"} or parts.path not in ("", "/"):
        raise ValueError("takes no path and no query option but starttls=true|false")
    starttls = options.get("starttls", ["false"])[-1].lower()
    if starttls not in ("true", "false"):
        raise ValueError("has starttls= neither true nor false")
    if parts.scheme == "smtps" and starttls == "true":
        raise ValueError("is smtps:// (TLS from the start) and asks for starttls too")
    return SmtpTarget(
        hostname=parts.hostname, port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        implicit_tls=parts.scheme == "smtps", starttls=starttls == "true")


class OperatorSettings(BaseSettings):
    """Every setting but the token secret: all the operator CLI (org_service/cli.py) reads,
    so it runs where JWT_SECRET_KEY is not at hand."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # Unset: the app starts an embedded SecantusDB under EMBEDDED_DATA_DIR (development only).
    MONGODB_URL: str | None = None
    MASTER_DB_NAME: str = Field(default="master_db", min_length=1, max_length=38)
    # Access tokens are short-lived: a session goes on by refreshing them (POST
    # /auth/refresh). The name of the first version, JWT_EXPIRE_MINUTES, is still read.
    ACCESS_TOKEN_MINUTES: int = Field(
        default=15, ge=1, le=24 * 60,
        validation_alias=AliasChoices("ACCESS_TOKEN_MINUTES", "JWT_EXPIRE_MINUTES"))
    # Sessions (org_service/sessions): a session ends SESSION_MAX_DAYS after its login
    # whatever happens, and after SESSION_IDLE_DAYS without a refresh. A spent refresh
    # token presented again ends its whole session, unless it is the one spent last and
    # at most REFRESH_REUSE_GRACE_SECONDS ago (two tabs refreshing at once): that one gets
    # the same new pair again. A member's sessions beyond SESSIONS_PER_MEMBER end, least
    # recently used first, as new ones start.
    SESSION_MAX_DAYS: int = Field(default=30, ge=1, le=365)
    SESSION_IDLE_DAYS: int = Field(default=7, ge=1, le=365)
    REFRESH_REUSE_GRACE_SECONDS: int = Field(default=10, ge=0, le=300)
    SESSIONS_PER_MEMBER: int = Field(default=50, ge=1, le=10_000)
    BCRYPT_ROUNDS: int = Field(default=12, ge=4, le=16)
    # Comma-separated origins, e.g. "https://app.example.com,https://admin.example.com".
    CORS_ORIGINS: str = ""

    EMBEDDED_DATA_DIR: Path = Path(".data")
    # Bounded waits so a missing database turns into a 503, never a hung request.
    MONGODB_TIMEOUT_MS: int = Field(default=5000, ge=100, le=60_000)
    RETRY_AFTER_SECONDS: int = Field(default=5, ge=1, le=300)
    MAX_BODY_BYTES: int = Field(default=1024 * 1024, ge=1024)
    # Deadline of every database operation of a tenant request. A rename or delete waits
    # this long (after marking the organization) before it folds back or drops any straggler
    # collection a request that resolved the old name may have re-created. That runs after
    # its response, but a create of the name given up, or the next rename or delete of the
    # organization, waits for it (this + 250 ms at most). Shorter is not safe: measured in
    # docs/lifecycle.md, 1000-1500 ms cut off (503) many writes of a loaded machine.
    TENANT_REQUEST_TIMEOUT_MS: int = Field(default=3000, ge=50, le=60_000)
    # How long a lifecycle operation (create/rename/delete) belongs to the process running
    # it; after that, startup recovery or the periodic sweep finishes or undoes it.
    LIFECYCLE_LEASE_SECONDS: float = Field(default=60, gt=0, le=3600)
    LIFECYCLE_SWEEP_SECONDS: float = Field(default=10, gt=0, le=3600)
    # A deleted organization is parked this many days (its collection renamed to
    # parked_<id>, its members and document set aside) so an operator can bring it back
    # (`org-service restore-deleted`); the sweep (every LIFECYCLE_SWEEP_SECONDS) purges it
    # afterwards. 0: a delete drops everything at once (docs/lifecycle.md).
    DELETION_GRACE_DAYS: int = Field(default=7, ge=0, le=365)
    # How long an Idempotency-Key of POST /org/create is remembered.
    IDEMPOTENCY_KEY_TTL_SECONDS: int = Field(default=24 * 3600, ge=60)

    # Login throttling, shared by every API process through MongoDB: after this many failed
    # logins for one email from one client address (or from one address for any emails)
    # within the window, further attempts get 429 until the window that began with the
    # first failure has passed. Failures for one email from anywhere stop at a much higher
    # ceiling; past SLOWDOWN_AFTER of them each makes the next attempt for that email wait
    # twice as long (1 s, 2 s, 4 s, ... at most SLOWDOWN_MAX): strangers guessing elsewhere
    # slow the owner down by seconds, never lock them out below the ceiling.
    LOGIN_WINDOW_SECONDS: int = Field(default=15 * 60, ge=1, le=24 * 3600)
    LOGIN_MAX_FAILURES_PER_EMAIL: int = Field(default=5, ge=1)
    LOGIN_MAX_FAILURES_PER_ADDRESS: int = Field(default=20, ge=1)
    LOGIN_EMAIL_CEILING: int = Field(default=100, ge=1)
    LOGIN_EMAIL_SLOWDOWN_AFTER: int = Field(default=10, ge=0)
    LOGIN_EMAIL_SLOWDOWN_MAX_SECONDS: int = Field(default=30, ge=1, le=3600)
    # Public creates per client address per window (each costs a password hash), counted
    # like failed logins; then 429. Password hashes of each kind (checks for logins, which
    # go first; new passwords for creates and password changes) that may wait per process
    # behind the running ones: a request needing one more gets 503 with Retry-After at once.
    CREATE_MAX_PER_ADDRESS: int = Field(default=20, ge=1)
    CREATE_WINDOW_SECONDS: int = Field(default=3600, ge=1, le=24 * 3600)
    HASH_QUEUE_MAX: int = Field(default=32, ge=0)
    # Step-up for credential changes: PUT /org/update may change the admin's email or
    # password only with a token whose login (auth_time) is at most this old, or with the
    # current password in the body, so a stolen token cannot become a permanent takeover.
    CREDENTIAL_CHANGE_MAX_AGE_SECONDS: int = Field(default=600, ge=1, le=24 * 3600)

    # Tenant records (org_service/records).
    MAX_RECORD_BYTES: int = Field(default=256 * 1024, ge=1024, le=8 * 1024 * 1024)
    # Server-side bound of every record read (find, count, aggregate) except the export.
    QUERY_MAX_TIME_MS: int = Field(default=2000, ge=10, le=600_000)
    EXPORT_BATCH_SIZE: int = Field(default=200, ge=1, le=10_000)
    MAX_INDEXES_PER_ORG: int = Field(default=10, ge=0, le=50)
    # POST /org/indexes answers 201 when the build ends within this wait, else 202 (building).
    INDEX_BUILD_WAIT_SECONDS: float = Field(default=2.0, ge=0, le=60)
    INDEX_BUILD_TIMEOUT_SECONDS: int = Field(default=3600, ge=1)
    # What one listing, query page or export batch may hold, in BSON bytes: a page stops
    # early (with `next`) when the next record would not fit. At least one record always.
    MAX_RESPONSE_BYTES: int = Field(default=8 * 1024 * 1024, ge=64 * 1024)
    # Requests of one organization in flight in one API process; past it 429 (0: no limit).
    MAX_TENANT_REQUESTS_IN_FLIGHT: int = Field(default=64, ge=0)
    # Requests running at once in one API process (health checks and /metrics aside); up to
    # REQUEST_QUEUE_LIMIT more wait in line, each at most REQUEST_QUEUE_TIMEOUT_MS; any
    # other gets 503 with Retry-After at once. Defaults from the overload benchmark
    # (docs/benchmarks.md): past ~32 concurrent database operations the driver spends more
    # CPU per request, and the queue holds a 256-client burst without shedding.
    MAX_REQUESTS_IN_FLIGHT: int = Field(default=32, ge=1)
    REQUEST_QUEUE_LIMIT: int = Field(default=512, ge=0)
    REQUEST_QUEUE_TIMEOUT_MS: int = Field(default=1000, ge=1, le=60_000)

    # Audit trail (org_service/audit) and /metrics. Entries expire this many days after they
    # were written (a TTL index). Identical refused events from strangers (failed or
    # throttled logins and creates, wrong X-Organization-ID) within one window of this many
    # seconds are one entry with a count (0: never collapse).
    AUDIT_RETENTION_DAYS: int = Field(default=365, ge=1, le=100 * 365)
    AUDIT_COLLAPSE_SECONDS: int = Field(default=60, ge=0, le=24 * 3600)
    # The organizations gauge is counted at most once per this many seconds per process.
    METRICS_REFRESH_SECONDS: float = Field(default=15, ge=0, le=3600)
    # When set, GET /metrics wants `Authorization: Bearer <token>` (at least 16 characters).
    METRICS_TOKEN: SecretStr | None = None

    # Invitations (org_service/invitations) and the mail of the outbox (org_service/outbox).
    # The accept link of an invitation; `{token}` becomes the invitation's token. The default
    # is this API's own GET /invitations/{token} on the development address, so a link read
    # from the log works without a front end; in production, the front end's accept page.
    INVITE_URL_TEMPLATE: str = Field(
        default="http://127.0.0.1:8000/invitations/{token}", min_length=8, max_length=2000)
    # Password reset (org_service/recovery). The emailed link is the only proof the person
    # holds the mailbox, so it is short-lived: long enough to reach a slow inbox, short
    # enough that a mail read later (a forwarded message, a shared screen) is worthless.
    PASSWORD_RESET_MINUTES: int = Field(default=30, ge=5, le=24 * 60)
    # The reset page of the front end; `{token}` becomes the token. The default keeps the
    # token in the fragment, which browsers never send to a server (nor to its logs).
    PASSWORD_RESET_URL_TEMPLATE: str = Field(
        default="http://127.0.0.1:8000/reset-password#token={token}", min_length=8,
        max_length=2000)
    # Reset requests (each may send a mail to someone) per client address and per email,
    # answered or not, within the window; past either, 429. Per email is low: a victim's
    # inbox must not be floodable; per address higher: one office shares an address.
    PASSWORD_RESET_MAX_PER_EMAIL: int = Field(default=5, ge=1)
    PASSWORD_RESET_MAX_PER_ADDRESS: int = Field(default=20, ge=1)
    PASSWORD_RESET_WINDOW_SECONDS: int = Field(default=3600, ge=1, le=24 * 3600)
    # Email verification and change (org_service/verification). A verification link proves
    # a mailbox, not a password, so it may live longer than a reset link: a new member
    # reads their mail some time after being added.
    EMAIL_VERIFICATION_HOURS: int = Field(default=48, ge=1, le=30 * 24)
    # The front end's confirmation page; `{token}` becomes the token (in the fragment, kept
    # out of servers' logs, as for resets). It posts the token to /auth/verify-email.
    EMAIL_VERIFICATION_URL_TEMPLATE: str = Field(
        default="http://127.0.0.1:8000/verify-email#token={token}", min_length=8,
        max_length=2000)
    # True: a member whose email is not verified cannot log in (/auth/login, /admin/login:
    # 403 email_unverified). Members from before verification existed count as unverified.
    REQUIRE_VERIFIED_EMAIL: bool = False
    # Unset: mail is not sent but written to the log, link included (development only).
    # `smtp://[user:pass@]host[:port][?starttls=true]`, or `smtps://` for TLS from the start.
    SMTP_URL: SecretStr | None = None
    SMTP_FROM: str = Field(default="org_service <no-reply@localhost>", min_length=3,
                           max_length=320)
    # Each SMTP step (connect, TLS, login, each command) waits at most this long.
    SMTP_TIMEOUT_SECONDS: float = Field(default=10, gt=0, le=300)
    # Off in an API process that must not deliver (another process does): it still queues.
    OUTBOX_SENDER_ENABLED: bool = True
    # Mail queued by this process is sent at once; mail another process queued, or that is
    # due again, is looked for at least this often.
    OUTBOX_POLL_SECONDS: float = Field(default=5, gt=0, le=3600)
    # A failed delivery is retried after base, 2 x base, 4 x base... (with jitter, at most
    # MAX); after MAX_ATTEMPTS it is marked failed and logged as an error (kept, not sent).
    # The defaults retry for about 10 hours: a mail server down overnight loses nothing.
    OUTBOX_RETRY_BASE_SECONDS: float = Field(default=2, gt=0, le=3600)
    OUTBOX_RETRY_MAX_SECONDS: float = Field(default=1800, gt=0, le=24 * 3600)
    OUTBOX_MAX_ATTEMPTS: int = Field(default=24, ge=1, le=1000)
    # How long a claimed message belongs to the sender that claimed it; after that another
    # sender (another process, or this one after a crash) delivers it. Longer than a whole
    # SMTP conversation, or a slow delivery would be sent twice.
    OUTBOX_LEASE_SECONDS: float = Field(default=120, gt=0, le=3600)

    @field_validator("INVITE_URL_TEMPLATE", "PASSWORD_RESET_URL_TEMPLATE",
                     "EMAIL_VERIFICATION_URL_TEMPLATE")
    @classmethod
    def _template_takes_the_token(cls, value: str) -> str:
        if "{token}" not in value:
            raise ValueError("must contain {token}, where the link's token goes")
        try:
            value.format(token="t")
        except (KeyError, IndexError, ValueError):
            raise ValueError("may hold no placeholder but {token} (write { and } as {{ and "
                             "}})") from None
        return value

    @field_validator("SMTP_URL")
    @classmethod
    def _smtp_url_parses(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None  # `SMTP_URL=` in a .env file: log mail instead
        parse_smtp_url(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _outbox_timings_agree(self) -> Self:
        if self.OUTBOX_RETRY_MAX_SECONDS < self.OUTBOX_RETRY_BASE_SECONDS:
            raise ValueError("OUTBOX_RETRY_MAX_SECONDS must be at least "
                             "OUTBOX_RETRY_BASE_SECONDS")
        # An SMTP conversation is some six steps, each waiting up to the timeout.
        if self.OUTBOX_LEASE_SECONDS < 6 * self.SMTP_TIMEOUT_SECONDS:
            raise ValueError("OUTBOX_LEASE_SECONDS must be at least 6 x SMTP_TIMEOUT_SECONDS "
                             "(a whole SMTP conversation), or a slow delivery is sent twice")
        return self

    @property
    def smtp_target(self) -> SmtpTarget | None:
        return parse_smtp_url(self.SMTP_URL.get_secret_value()) if self.SMTP_URL else None

    @property
    def outbox_guard_grace_seconds(self) -> float:
        """How long a queued message may wait for the document its guard names to appear.
        The message is written first, then (say) the invitation: that second write may take
        a server selection, a socket timeout (2x) and a retried attempt, some 6 x
        MONGODB_TIMEOUT_MS; later than this, the document will not come (its request died)
        and the message is dropped."""
        return max(60.0, 10 * self.MONGODB_TIMEOUT_MS / 1000)

    @field_validator("METRICS_TOKEN")
    @classmethod
    def _metrics_token_strong_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None  # `METRICS_TOKEN=` in a .env file: no token
        if len(value.get_secret_value()) < MIN_METRICS_TOKEN_CHARS:
            raise ValueError(f"must be at least {MIN_METRICS_TOKEN_CHARS} characters (it is "
                             f"{len(value.get_secret_value())})")
        return value

    @property
    def cors_origins(self) -> list[str]:
        return [origin.strip() for origin in self.CORS_ORIGINS.split(",") if origin.strip()]

    @property
    def embedded_storage_path(self) -> Path:
        return self.EMBEDDED_DATA_DIR / "db"


class Settings(OperatorSettings):
    """What the API reads."""

    JWT_SECRET_KEY: SecretStr

    @field_validator("JWT_SECRET_KEY")
    @classmethod
    def _secret_long_enough(cls, value: SecretStr) -> SecretStr:
        size = len(value.get_secret_value().encode())
        if size < MIN_SECRET_BYTES:
            raise ValueError(f"must be at least {MIN_SECRET_BYTES} bytes (it is {size})")
        return value


@lru_cache
def get_settings() -> Settings:
    return Settings()  # type: ignore[call-arg]  # filled from the environment


# Settings whose values never appear in an error: pydantic's own report echoes every
# input_value (and for a missing field, every setting given), so it is never printed.
SECRET_SETTINGS = frozenset(
    name for name, field in Settings.model_fields.items()
    if field.annotation is SecretStr or SecretStr in get_args(field.annotation))


def mask_credentials(value: str) -> str:
    """A URL with its user:password (anything up to the last `@` after the scheme) hidden;
    greedy, so an `@` the password forgot to escape cannot leak its tail."""
    return re.sub(r"://.*@", "://***@", value)


def configuration_problems(error: ValidationError) -> list[str]:
    """One line per bad setting: its name and what is wrong, with the value only for a
    setting that is not secret (a URL's credentials masked)."""
    lines = []
    for problem in error.errors(include_url=False):
        name = ".".join(str(part) for part in problem["loc"]) or "settings"
        if problem["type"] == "missing":
            lines.append(f"{name}: is not set (in the environment or in .env)")
            continue
        message = str(problem["msg"]).removeprefix("Value error, ")
        value: Any = problem.get("input")
        if name not in SECRET_SETTINGS and isinstance(value, str | int | float):
            message += f" (got {mask_credentials(str(value))!r})"
        lines.append(f"{name}: {message}")
    return lines


def settings_or_exit() -> Settings:
    """The settings for a server process: on a bad configuration it prints one line per
    problem to stderr and exits 2, where a traceback would bury the cause and print
    secrets."""
    try:
        return get_settings()
    except ValidationError as error:
        for line in configuration_problems(error):
            print(f"configuration error: {line}", file=sys.stderr)
        # Uvicorn lets a SystemExit raised while importing the app end the process with its
        # status and no traceback; `from None` keeps the ValidationError out of it even if
        # something up there prints the exception.
        raise SystemExit(2) from None
