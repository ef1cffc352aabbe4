"""Create Subscription on Postgres in one round trip, like Create Trigger (`triggers/store_pg`).

The generic path reads the trigger (its code and input fields, to validate the inputs), then runs
BEGIN, INSERT subscription, INSERT secrets, COMMIT: five round trips. Here the trigger comes from a
per-process cache, and one prepared statement inserts the subscription and its secrets through a
data-modifying CTE, atomic on its own, so no BEGIN or COMMIT is sent. The cached copy is checked
inside that statement: the subscription is inserted only while the trigger's `updated_at` is still
the cached version, so a trigger changed or deleted meanwhile (by any process) inserts nothing, and
the caller validates again against a fresh read.
"""

import json
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any, cast

import asyncpg
from cachetools import TTLCache
from sqlalchemy import JSON, String, Table
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from ..db.runtime_tables import Subscription
from ..triggers.inputs import RunnableTrigger
from ..triggers.store_pg import with_driver

subscriptions = cast(Table, Subscription.__table__)
_DIALECT = asyncpg_dialect()

# Bounded, and short-lived so that an entry of a trigger nobody subscribes to any more goes soon;
# a stale entry costs only the retry, never a wrong answer, since the INSERT checks the version.
_runnables: TTLCache[tuple[uuid.UUID, uuid.UUID], RunnableTrigger] = TTLCache(
    maxsize=10_000, ttl=30.0, timer=time.monotonic
)


def is_postgres(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"


def cached_runnable(engine: AsyncEngine, integration_id: uuid.UUID, trigger_id: uuid.UUID) -> RunnableTrigger | None:
    # Only Postgres checks the version in the INSERT: on SQLite a cached copy could validate
    # against fields the trigger no longer has.
    return _runnables.get((integration_id, trigger_id)) if is_postgres(engine) else None


def remember(engine: AsyncEngine, integration_id: uuid.UUID, trigger_id: uuid.UUID, trigger: RunnableTrigger) -> None:
    if is_postgres(engine) and trigger.version is not None:
        _runnables[(integration_id, trigger_id)] = trigger


def forget(integration_id: uuid.UUID, trigger_id: uuid.UUID) -> None:
    _runnables.pop((integration_id, trigger_id), None)


def _cast(name: str) -> str:
    kind = subscriptions.c[name].type
    if isinstance(kind, String):
        # Never varchar(n): a cast to it truncates silently, where the column's own check raises.
        return "text"
    if isinstance(kind, JSON):
        return "jsonb"
    return kind.compile(dialect=_DIALECT)


@lru_cache(maxsize=8)
def insert_sql(columns: tuple[str, ...]) -> str:
    """The statement for these subscription columns, in this order ($1 …), then $n+1 the trigger's
    version, $n+2 and $n+3 the secrets' names and tokens, $n+4 their `updated_at`."""
    position = {name: i for i, name in enumerate(columns, start=1)}
    n = len(columns)
    return f"""
WITH new_subscription AS (
    INSERT INTO subscriptions ({", ".join(columns)})
    SELECT {", ".join(f"${position[c]}::{_cast(c)}" for c in columns)}
    WHERE EXISTS (
        SELECT 1 FROM triggers
        WHERE id = ${position["trigger_id"]}::uuid AND integration_id = ${position["integration_id"]}::uuid
          AND updated_at = ${n + 1}::timestamptz
    )
    RETURNING id
), new_secrets AS (
    INSERT INTO subscription_secrets (subscription_id, name, token, updated_at)
    SELECT s.id, x.name, x.token, ${n + 4}::timestamptz
    FROM new_subscription s, unnest(${n + 2}::text[], ${n + 3}::text[]) AS x(name, token)
)
SELECT id FROM new_subscription
"""


def _parameter(name: str, value: Any) -> Any:
    # As SQLAlchemy's JSON type writes it: a None value is JSON null, not SQL NULL.
    return json.dumps(value) if isinstance(subscriptions.c[name].type, JSON) else value


async def insert_subscription(
    engine: AsyncEngine, version: datetime, values: dict[str, Any], sealed_secrets: Mapping[str, str], now: datetime
) -> bool:
    """As `store.insert_subscription`, in one round trip, if the trigger is still at `version`.
    False if it is not (changed or deleted): nothing was inserted."""
    columns = tuple(values)
    args = [_parameter(c, values[c]) for c in columns]
    args += [version, list(sealed_secrets), list(sealed_secrets.values()), now]

    async def work(driver: asyncpg.Connection) -> bool:
        try:
            return await driver.fetchrow(insert_sql(columns), *args) is not None
        except asyncpg.ForeignKeyViolationError:
            # The trigger was deleted while the statement ran: the same answer as a failed check.
            return False

    return bool(await with_driver(engine, work))

