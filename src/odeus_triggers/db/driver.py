"""The asyncpg connection under a pooled SQLAlchemy one, for the few hot statements written for
Postgres alone (`*_pg` modules): one prepared statement each, one Bind/Execute exchange, and none of
the SQL layer's per-statement machinery."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .sql import is_outage


@asynccontextmanager
async def raw_driver(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection's asyncpg connection, outside any explicit transaction: each statement
    commits on its own. After an outage the connection is dropped, not handed to the next user."""
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        try:
            yield raw.driver_connection
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            if is_outage(exc):
                await conn.invalidate()
            raise


async def _driver_of(conn: AsyncConnection) -> asyncpg.Connection:
    return cast(asyncpg.Connection, (await conn.get_raw_connection()).driver_connection)


class HeldDriver:
    """One pooled connection kept by a user whose statements run one after another (the
    scheduler's claims, its group commit): at hundreds of statements a second, checking a
    connection out and in for each costs more of the worker's CPU than the statement's own Python.
    After any error the connection goes back (dropped if broken or interrupted mid-statement) and
    the next use takes another."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._lock:
            if self._conn is not None and (await _driver_of(self._conn)).is_closed():
                # The server closed it (a restart, a failover): as the pool's checkout hook does,
                # swap it rather than fail the next statement.
                conn, self._conn = self._conn, None
                await conn.invalidate()
                await conn.close()
            if self._conn is None:
                self._conn = await self._engine.connect()
            try:
                yield await _driver_of(self._conn)
            except BaseException as exc:
                conn, self._conn = self._conn, None
                # Interrupted mid-statement, the connection's state is unknown: never reuse it.
                if not isinstance(exc, Exception) or is_outage(exc):
                    await conn.invalidate()
                await conn.close()
                raise

    async def close(self) -> None:
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                await conn.close()
