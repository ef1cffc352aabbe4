"""Small helpers over the two supported databases."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands timestamps back without their zone; they were written in UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def upsert_insert(conn: AsyncConnection, table: Any) -> Any:
    """An INSERT that supports ON CONFLICT on both dialects."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def violated_constraint(exc: IntegrityError) -> str:
    """The name of the violated constraint or index, or the driver's message where it gives no name."""
    orig = exc.orig
    name = getattr(orig, "constraint_name", None)  # asyncpg, through SQLAlchemy's adaptation
    if name is None:
        cause = getattr(orig, "__cause__", None)
        name = getattr(cause, "constraint_name", None)
    return name or str(orig)
