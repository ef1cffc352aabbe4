"""The asyncpg connection under a pooled SQLAlchemy one, for the few hot statements written for
Postgres alone (`*_pg` modules): one prepared statement each, one Bind/Execute exchange, and none of
the SQL layer's per-statement machinery."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

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
