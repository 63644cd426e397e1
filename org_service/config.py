"""Every setting in one typed object, read from the environment and `.env`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_SECRET_BYTES = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # Unset: the app starts an embedded SecantusDB under EMBEDDED_DATA_DIR (development only).
    MONGODB_URL: str | None = None
    MASTER_DB_NAME: str = Field(default="master_db", min_length=1, max_length=38)
    JWT_SECRET_KEY: SecretStr
    JWT_EXPIRE_MINUTES: int = Field(default=60, ge=1, le=24 * 60)
    BCRYPT_ROUNDS: int = Field(default=12, ge=4, le=16)
    # Comma-separated origins, e.g. "https://app.example.com,https://admin.example.com".
    CORS_ORIGINS: str = ""

    EMBEDDED_DATA_DIR: Path = Path(".data")
    # Bounded waits so a missing database turns into a 503, never a hung request.
    MONGODB_TIMEOUT_MS: int = Field(default=5000, ge=100, le=60_000)
    RETRY_AFTER_SECONDS: int = Field(default=5, ge=1, le=300)
    MAX_BODY_BYTES: int = Field(default=1024 * 1024, ge=1024)

    # Login throttling, shared by every API process through MongoDB: after this many failed
    # logins for one email (or from one client address) within the window, further attempts
    # get 429 until the window that began with the first failure has passed.
    LOGIN_WINDOW_SECONDS: int = Field(default=15 * 60, ge=1, le=24 * 3600)
    LOGIN_MAX_FAILURES_PER_EMAIL: int = Field(default=5, ge=1)
    LOGIN_MAX_FAILURES_PER_ADDRESS: int = Field(default=20, ge=1)

    # Tenant records (org_service/records).
    MAX_RECORD_BYTES: int = Field(default=256 * 1024, ge=1024, le=8 * 1024 * 1024)
    # Server-side bound of every record read (find, count, aggregate) except the export.
    QUERY_MAX_TIME_MS: int = Field(default=2000, ge=10, le=600_000)
    EXPORT_BATCH_SIZE: int = Field(default=200, ge=1, le=10_000)
    MAX_INDEXES_PER_ORG: int = Field(default=10, ge=0, le=50)
    # POST /org/indexes answers 201 when the build ends within this wait, else 202 (building).
    INDEX_BUILD_WAIT_SECONDS: float = Field(default=2.0, ge=0, le=60)
    INDEX_BUILD_TIMEOUT_SECONDS: int = Field(default=3600, ge=1)

    @field_validator("JWT_SECRET_KEY")
    @classmethod
    def _secret_long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"JWT_SECRET_KEY must be at least {MIN_SECRET_BYTES} bytes")
        return value

    @property
    def cors_origins(self) -> list[str]:
        return [origin.strip() for origin in self.CORS_ORIGINS.split(",") if origin.strip()]


@lru_cache
def get_settings() -> Settings:
    return Settings()  # type: ignore[call-arg]  # filled from the environment
