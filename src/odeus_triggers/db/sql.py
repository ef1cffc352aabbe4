"""Small helpers over the two supported databases, and the two rules that read their errors:
which failures are outages (503) and which constraint violations are the client's (409, 404)."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, NoReturn

import asyncpg
from sqlalchemy import DateTime, Interval, Table, any_, bindparam, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection

from ..errors import ApiError, IntegrationNotFound, TriggerNameConflict
from ..timestamps import utcnow
from .tables import NAME_INDEX


def in_list(column: Any, name: str, postgres: bool) -> Any:
    """`column IN (…the list bound as name…)`. On Postgres `= ANY($1)` with one array parameter, so
    that the statement is the same whatever the list's length: asyncpg prepares it once per
    connection, where `IN ($1, $2, …)` would be a new statement (a new prepare) for every length."""
    if postgres:
        return column == any_(bindparam(name, type_=postgresql.ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))


def in_chosen(column: Any, chosen: Any, postgres: bool) -> Any:
    """`column IN (chosen)`, where `chosen` is a SELECT with a LIMIT (and FOR UPDATE SKIP LOCKED):
    on Postgres as `= ANY(ARRAY(chosen))`, which runs it exactly once. Inside a plain IN, the
    planner may run it again for rows of the outer statement, and every run skips what is locked
    by then, so the statement can take more rows than the LIMIT."""
    if postgres:
        return column == any_(func.array(chosen.scalar_subquery()))
    return column.in_(chosen.scalar_subquery())


@cache
def locked_epochs(table: Table, postgres: bool) -> Any:
    """`SELECT id, lease_epoch … WHERE id IN b_ids ORDER BY id FOR UPDATE`: the fence of a batch
    write, rows locked in one order for every writer of a batch, so that two never deadlock.
    SQLite has no row locks: its writer holds the database's."""
    stmt = (
        select(table.c.id, table.c.lease_epoch)
        .where(in_list(table.c.id, "b_ids", postgres))
        .order_by(table.c.id)
    )
    return stmt.with_for_update() if postgres else stmt


def upsert_insert(conn: AsyncConnection, table: Any) -> Any:
    """An INSERT that supports ON CONFLICT on both dialects."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


# Postgres errors that say "not now" rather than "wrong": connection failures (08), out of
# resources (53), operator intervention (57: shutdown, crash and start-up, which asyncpg raises as
# plain errors while Postgres starts or stops, and statement_timeout), and a read-only database
# (25006), as a standby is after a failover.
_OUTAGE_SQLSTATES = ("08", "53", "57", "25006")


def _sqlstate(exc: BaseException) -> str:
    # SQLAlchemy wraps the driver's exception; the one-round-trip path sees it bare.
    orig = getattr(exc, "orig", None) or exc
    return str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` means the database, not the request, is at fault: a 503, never a 500."""
    # OSError: what connecting raises bare (refused, unreachable, DNS failure, and asyncio's plain
    # OSError "Multiple exceptions: ..." when a host name such as localhost has several addresses);
    # TimeoutError is one too.
    if isinstance(exc, (OperationalError, InterfaceError, PoolTimeout, OSError, asyncpg.InterfaceError)):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return _sqlstate(exc).startswith(_OUTAGE_SQLSTATES)


def violated_constraint(exc: BaseException) -> str:
    """The name of the violated constraint or index, or the driver's message where it gives no name."""
    orig = getattr(exc, "orig", None) or exc
    name = getattr(orig, "constraint_name", None)  # asyncpg, through SQLAlchemy's adaptation or bare
    if name is None:
        cause = getattr(orig, "__cause__", None)
        name = getattr(cause, "constraint_name", None)
    return name or str(orig)


# Postgres names the constraint; SQLite only quotes the index expression or says "FOREIGN KEY".
_CONSTRAINT_ERRORS: tuple[tuple[str, type[ApiError]], ...] = (
    (NAME_INDEX, TriggerNameConflict),
    ("lower(name)", TriggerNameConflict),
    ("fk_triggers_integration_id", IntegrationNotFound),
    ("FOREIGN KEY", IntegrationNotFound),
)


def constraint_error(exc: BaseException) -> ApiError | None:
    """The client's error that a violated constraint means, or None if it means a bug."""
    name = violated_constraint(exc)
    for marker, error in _CONSTRAINT_ERRORS:
        if marker in name:
            return error()
    return None


def raise_for_constraint(exc: BaseException) -> NoReturn:
    """Raise the client's error that a violated constraint means, or `exc` itself if it means a bug."""
    error = constraint_error(exc)
    if error is None:
        raise exc
    raise error from None


@dataclass(frozen=True, slots=True)
class DbClock:
    """Time in a statement, from the database's clock: `now()` on Postgres, so that every worker
    agrees on what is due whatever its own clock says. The embedded SQLite has no clock of its own;
    the one process that uses it gives its own."""

    now: Any

    def plus(self, seconds: float) -> Any:
        return self.now + literal(timedelta(seconds=seconds), Interval())


def db_clock(conn: AsyncConnection) -> DbClock:
    if conn.dialect.name == "postgresql":
        return DbClock(func.now())
    at = utcnow()
    return _PythonClock(literal(at, DateTime(timezone=True)), at)


@dataclass(frozen=True, slots=True)
class _PythonClock(DbClock):
    at: datetime

    def plus(self, seconds: float) -> Any:
        return literal(self.at + timedelta(seconds=seconds), DateTime(timezone=True))
