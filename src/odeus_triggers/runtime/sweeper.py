"""The retention sweeps (RUNTIME.md): poll runs are kept 7 days, dedupe keys 30 days after they
were last seen, and at most `ODEUS_DEDUPE_MAX_KEYS` of them per subscription (`key_cap`); a
delivered event's body is cleared 7 days after its delivery, and delivery attempts are kept 30
days. Each statement changes a bounded batch found through an index, off the poll and delivery
paths, so that a sweep never holds locks long nor scans a table; a backlog drains batch after batch.

Every worker sweeps; SKIP LOCKED lets several do it at once without waiting on each other.
"""

import asyncio
import logging
import uuid
from typing import Any, cast

from sqlalchemy import Select, Table, delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..db.runtime_tables import PENDING, DeliveryAttempt, PollRun, TriggerEvent
from ..db.sql import db_clock, is_outage
from .key_cap import cap_keys_once

log = logging.getLogger("odeus_triggers.runtime.sweeper")

poll_runs = cast(Table, PollRun.__table__)
events = cast(Table, TriggerEvent.__table__)
attempts = cast(Table, DeliveryAttempt.__table__)

POLL_RUNS_KEPT_S = 7 * 86_400.0
KEYS_KEPT_S = 30 * 86_400.0
BODIES_KEPT_S = 7 * 86_400.0  # after delivery
ATTEMPTS_KEPT_S = 30 * 86_400.0
# The predicate of the partial index ix_trigger_events_delivered_body, spelled as it is there: SQLite
# uses a partial index only for a query that repeats its WHERE terms, literals and all.
_DELIVERED_WITH_BODY = text("trigger_events.state = 'delivered' AND trigger_events.body IS NOT NULL")
BATCH = 1_000
EVERY_S = 60.0
# While a batch comes back full there is a backlog: the next one follows soon, not in a minute.
BACKLOG_EVERY_S = 1.0
MAX_KEYS = 100_000


def _chosen_once(conn: AsyncConnection, batch: Select[Any]) -> Any:
    """The ids of a batch, as a subquery that runs once per statement. Written straight into
    `IN (…)`, Postgres may plan it as the inner side of a nested loop and run it again for every
    row, each run locking past the rows the statement already changed: LIMIT would bound nothing.
    A MATERIALIZED CTE runs once. SQLite runs an uncorrelated `IN (…)` once anyway, and its driver
    counts no rows for a statement that starts with WITH, so it keeps the plain subquery."""
    if conn.dialect.name != "postgresql":
        return batch.scalar_subquery()
    chosen = batch.cte().prefix_with("MATERIALIZED")
    return select(chosen.c.id).scalar_subquery()


async def sweep_once(engine: AsyncEngine, batch: int = BATCH) -> dict[str, int]:
    """One bounded batch per sweep; the number of rows each deleted (for `event_bodies`: cleared)."""
    deleted: dict[str, int] = {}
    async with engine.begin() as conn:
        clock = db_clock(conn)
        old_runs = (
            select(poll_runs.c.id).where(poll_runs.c.started_at < clock.plus(-POLL_RUNS_KEPT_S))
            .limit(batch).with_for_update(skip_locked=True)
        )
        result = await conn.execute(delete(poll_runs).where(poll_runs.c.id.in_(_chosen_once(conn, old_runs))))
        deleted["poll_runs"] = result.rowcount or 0
    async with engine.begin() as conn:
        clock = db_clock(conn)
        # A pending event is still owed to its webhook, whatever its age: only the outbox's end
        # states (seeded, delivered, failed, cancelled) are dropped. Their attempts cascade.
        old_keys = (
            select(events.c.id)
            .where(events.c.last_seen_at < clock.plus(-KEYS_KEPT_S), events.c.state != PENDING)
            .limit(batch).with_for_update(skip_locked=True)
        )
        result = await conn.execute(delete(events).where(events.c.id.in_(_chosen_once(conn, old_keys))))
        deleted["trigger_events"] = result.rowcount or 0
    async with engine.begin() as conn:
        clock = db_clock(conn)
        # Only a delivered event's body goes: a failed one can still be redelivered by hand, and a
        # pending one is still owed. A redelivery that takes the row first makes it pending, so the
        # row lock (or its recheck on Postgres) leaves it out; one that comes after finds no body
        # and answers 409 event_not_deliverable. The key stays, until the 30 days above.
        old_bodies = (
            select(events.c.id).where(_DELIVERED_WITH_BODY, events.c.delivered_at < clock.plus(-BODIES_KEPT_S))
            .limit(batch).with_for_update(skip_locked=True)
        )
        result = await conn.execute(
            update(events).where(events.c.id.in_(_chosen_once(conn, old_bodies)), _DELIVERED_WITH_BODY).values(body=None)
        )
        deleted["event_bodies"] = result.rowcount or 0
    async with engine.begin() as conn:
        clock = db_clock(conn)
        old_attempts = (
            select(attempts.c.id).where(attempts.c.attempted_at < clock.plus(-ATTEMPTS_KEPT_S))
            .limit(batch).with_for_update(skip_locked=True)
        )
        result = await conn.execute(delete(attempts).where(attempts.c.id.in_(_chosen_once(conn, old_attempts))))
        deleted["delivery_attempts"] = result.rowcount or 0
    return deleted


class Sweeper:
    def __init__(
        self, engine: AsyncEngine, *, every_s: float = EVERY_S, batch: int = BATCH, max_keys: int = MAX_KEYS
    ) -> None:
        self._engine = engine
        self._every_s = every_s
        self._batch = batch
        self._max_keys = max_keys
        # In memory: a restarted worker walks from the start again, which costs one more walk.
        self._cap_cursor: uuid.UUID | None = None
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        while not self._stopping.is_set():
            wait = self._every_s
            try:
                deleted = await sweep_once(self._engine, self._batch)
                capped = await cap_keys_once(self._engine, self._max_keys, after=self._cap_cursor, batch=self._batch)
                self._cap_cursor = capped.cursor
                deleted["keys_over_cap"] = capped.deleted
                if any(n >= self._batch for n in deleted.values()):
                    wait = BACKLOG_EVERY_S
                if any(deleted.values()):
                    log.info("retention sweep", extra={f"deleted_{k}": v for k, v in deleted.items()})
            except Exception as exc:
                # The type only: driver messages can quote statements or connection details.
                log.warning("retention sweep failed (%s): retried later%s", type(exc).__name__,
                            "; the database is unreachable" if is_outage(exc) else "")
            try:
                await asyncio.wait_for(self._stopping.wait(), wait)
            except TimeoutError:
                pass

    def stop(self) -> None:
        self._stopping.set()
