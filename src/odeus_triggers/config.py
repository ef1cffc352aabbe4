"""Settings, read from the environment.

`DATABASE_URL` and `REDIS_URL` keep their conventional names so that platforms which inject them
work unchanged; everything else takes the `ODEUS_` prefix.
"""

from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    db_statement_timeout_seconds: float = Field(10.0, gt=0)

    rate_limit: str = "500/minute"
    rate_limit_unauthenticated: str = "60/minute"

    auth_cache_seconds: float = Field(
        5.0, ge=0, description="How long a verified key is trusted before it is looked up again."
    )
    max_body_bytes: int = Field(256 * 1024, ge=1024)

    polling_workers: int = Field(2, ge=1, le=32)
    polling_timeout_seconds: float = Field(10.0, gt=0, le=120)
    polling_memory_mb: int = Field(64, ge=8, le=1024)
    polling_max_fetches: int = Field(20, ge=0, le=100)
    polling_allow_private_network: bool = False

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.get_secret_value().startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
