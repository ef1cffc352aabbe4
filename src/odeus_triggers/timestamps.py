"""Time in UTC, and its one wire format: ISO 8601 with `Z`."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands timestamps back without their zone; they were written in UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def iso_z(value: datetime) -> str:
    return as_utc(value).isoformat().replace("+00:00", "Z")


def iso_ms(value: datetime) -> str:
    """ISO-8601 UTC with milliseconds and `Z`: how polling code sees `lastPollTime`."""
    return as_utc(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")
