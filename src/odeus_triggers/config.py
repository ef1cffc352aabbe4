"""Settings, read from the environment.

`DATABASE_URL` and `REDIS_URL` keep their conventional names so that platforms which inject them
work unchanged; everything else takes the `ODEUS_` prefix.
"""

import re
from functools import lru_cache
from typing import Literal

import limits
import redis.connection
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .origins import normalize_origin

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./odeus-triggers.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ODEUS_", extra="ignore")

    database_url: SecretStr = Field(
        SecretStr(DEFAULT_DATABASE_URL),
        validation_alias=AliasChoices("DATABASE_URL", "ODEUS_DATABASE_URL"),
    )
    redis_url: SecretStr | None = Field(
        None, validation_alias=AliasChoices("REDIS_URL", "ODEUS_REDIS_URL")
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    db_pool_size: int = Field(10, ge=1, le=200)
    db_connect_timeout_seconds: float = Field(3.0, gt=0)
    # Also how long a request can wait on a frozen or partitioned database before its 503 (plus
    # 2 s for SQLAlchemy to close the connection); every query of this API is a few index lookups.
    db_statement_timeout_seconds: float = Field(5.0, gt=0)
    # How long `migrate` (and `serve`'s migration step) waits for another replica's migration, or
    # for a table lock, before giving up; migrations themselves run without a statement timeout.
    migrate_lock_timeout_seconds: float = Field(600.0, gt=0)

    rate_limit: str = Field("500/minute", description="Requests per workspace, e.g. `500/minute`.")
    rate_limit_unauthenticated: str = Field(
        "60/minute", description="Requests without a valid API key, per client address."
    )
    rate_limit_key_prefix: str = Field(
        "odeus-triggers", min_length=1, description="Prefix of the rate-limit keys in Redis."
    )

    auth_cache_seconds: float = Field(
        5.0, ge=0, description="How long a verified key is trusted before it is looked up again."
    )
    max_body_bytes: int = Field(256 * 1024, ge=1024)
    # The HTTP server itself sets no bound on the request head: these are checked before the app runs.
    max_header_bytes: int = Field(
        16 * 1024, ge=1024, description="Largest header field (name and value); above it, 431."
    )
    max_head_bytes: int = Field(
        64 * 1024, ge=4096, description="Request target and every header field together; above it, 431."
    )
    max_headers: int = Field(
        100, ge=16, le=1000, description="Most header fields in one request; above it, 431."
    )
    linger_seconds: float = Field(
        2.0, gt=0, le=30,
        description="How long a connection closed on a refusal (413, 431) keeps discarding what the client "
        "still sends, so that the refusal is not lost to a TCP reset.",
    )
    public_origin: str = Field(
        "",
        description="Comma-separated origins (`https://api.example.com`) that browsers may call from, "
        "besides the one the Host header gives: for proxies that rewrite Host.",
    )

    polling_workers: int = Field(2, ge=1, le=32)
    polling_timeout_seconds: float = Field(10.0, gt=0, le=120)
    polling_memory_mb: int = Field(64, ge=8, le=1024)
    polling_max_fetches: int = Field(20, ge=0, le=100)
    polling_allow_private_network: bool = False
    polling_worker_uid: int = Field(
        65534, ge=1, description="User the sandbox workers switch to when the service runs as root."
    )
    polling_worker_gid: int = Field(
        65534, ge=1, description="Group the sandbox workers switch to when the service runs as root."
    )
    polling_check_workers: int = Field(
        1, ge=1, le=8, description="Sandbox workers kept for syntax checks on save; test runs never take them."
    )
    polling_max_runs_per_workspace: int | None = Field(
        None, ge=1, le=32,
        description="Test runs one workspace may have in the sandbox at once (default: half the workers, at least 1).",
    )
    polling_max_queued_per_workspace: int = Field(
        16, ge=0, le=1000, description="Runs of one workspace that may wait for a worker; more get 429."
    )

    encryption_keys: SecretStr | None = Field(
        None,
        description="Comma-separated Fernet keys that seal secrets at rest, newest first. Required on Postgres; "
        "on SQLite, a key file beside the database is used while it is unset.",
    )
    delivery_allow_private_network: bool = Field(
        False,
        description="Whether webhook URLs may point at private, loopback or link-local addresses (an operator's "
        "own workflow engine); separate from the polling code's switch.",
    )
    delivery_concurrency: int = Field(50, ge=1, le=1000, description="Webhook deliveries in flight per worker.")
    delivery_per_host: int = Field(
        10, ge=1, le=1000,
        description="Of those, at most this many to one destination host, so that a slow receiver cannot hold them all.",
    )
    delivery_timeout_seconds: float = Field(
        15.0, gt=0, le=120,
        description="How long one delivery attempt may take, connecting (at most 5 s of it) included; its lease is "
        "this plus 15 s.",
    )
    delivery_retry_scale: float = Field(
        1.0, gt=0, le=1.0,
        description="For tests: multiplies the delays of the retry schedule (5 s, 5 min, 30 min, …), so that a test "
        "sees several retries in seconds. A receiver's Retry-After floor is not scaled. Leave it at 1 in production.",
    )
    min_interval_seconds: int = Field(
        60, ge=1, le=86_400, description="The shortest polling interval a subscription may ask for."
    )
    dedupe_max_keys: int = Field(
        100_000, ge=1, description="Dedupe keys kept per subscription; beyond it the oldest go (pending events stay)."
    )
    embedded_worker: bool | None = Field(
        None,
        description="Whether the API process also runs the scheduler (the worker). Unset: on for SQLite, off for "
        "Postgres, where `odeus-triggers worker` processes poll (`serve --with-worker` turns it on).",
    )

    @field_validator("database_url")
    @classmethod
    def _postgres_uses_asyncpg(cls, value: SecretStr) -> SecretStr:
        # Platforms inject postgres:// or postgresql:// (libpq's forms); SQLAlchemy would read
        # the first as unknown and the second as psycopg2, neither of which is installed.
        url = value.get_secret_value()
        scheme, sep, rest = url.partition("://")
        if not sep or scheme not in ("postgres", "postgresql"):
            return value
        url = f"postgresql+asyncpg://{rest}"
        # asyncpg takes libpq's sslmode values under the name ssl.
        return SecretStr(re.sub(r"([?&])sslmode=", r"\1ssl=", url))

    @field_validator("redis_url")
    @classmethod
    def _is_a_redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        try:
            redis.connection.parse_url(value.get_secret_value())
        except ValueError:
            # Never the value itself: it may carry a password.
            raise ValueError("must be a URL such as redis://host:6379/0, rediss://… or unix://…") from None
        return value

    @field_validator("encryption_keys")
    @classmethod
    def _are_fernet_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        from cryptography.fernet import Fernet

        for n, key in enumerate(value.get_secret_value().split(","), start=1):
            try:
                Fernet(key.strip())
            except ValueError:
                # Never the key itself.
                raise ValueError(
                    f"key {n} is not a Fernet key (32 url-safe base64-encoded bytes); "
                    "make one with `odeus-triggers secrets generate-key`"
                ) from None
        return value

    @field_validator("public_origin")
    @classmethod
    def _each_is_an_origin(cls, value: str) -> str:
        for origin in filter(None, (o.strip() for o in value.split(","))):
            if normalize_origin(origin) is None:
                raise ValueError("must list origins as scheme://host[:port], separated by commas")
        return value

    @field_validator("rate_limit", "rate_limit_unauthenticated")
    @classmethod
    def _is_one_rate_limit(cls, value: str) -> str:
        try:
            limits.parse(value)
        except ValueError:
            raise ValueError("must be a rate such as 500/minute or 60 per 1 minute") from None
        return value

    @property
    def public_origins(self) -> list[str]:
        return [o.strip() for o in self.public_origin.split(",") if o.strip()]

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.get_secret_value().startswith("sqlite")

    @property
    def runs_embedded_worker(self) -> bool:
        return self.is_sqlite if self.embedded_worker is None else self.embedded_worker


@lru_cache
def get_settings() -> Settings:
    return Settings()
