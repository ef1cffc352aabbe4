"""The per-subscription cap on dedupe keys (RUNTIME.md: at most `ODEUS_DEDUPE_MAX_KEYS`, the oldest
going first), as a bounded step of the retention sweep rather than work on the poll path.

A pass walks the subscriptions by id from a cursor. Asking whether one holds more than the cap
costs at most cap + 1 entries of the (subscription_id, last_seen_at, id) index, so a pass stops
after a budget of such entries, a number of subscriptions, or a batch of deleted rows; a full walk
then costs about one read of that index, spread over passes. The counts come for as many
subscriptions at once as the budget left allows in full, in one statement: a pass over subscriptions
with few keys is a few statements, not a transaction for each of them.

The newest `cap` keys always stay. Beyond them, every key goes except a pending event's: it is
still owed to its webhook, so it stays past the cap, as it stays past the 30 days, and no younger
key is dropped in its place (that one would be a duplicate delivery the contract rules out). The
boundary is a position among the newest keys, not a count from the oldest, so two workers trimming
the same subscription at once delete the same rows, never twice as many.
"""

import uuid
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, delete, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..db.runtime_tables import PENDING, Subscription, TriggerEvent
from ..db.sql import in_chosen

subscriptions = cast(Table, Subscription.__table__)
events = cast(Table, TriggerEvent.__table__)

SUBSCRIPTIONS_PER_PASS = 500
SCAN_BUDGET = 1_000_000


@dataclass(frozen=True, slots=True)
class CapPass:
    deleted: int
    # The last subscription done with; the next pass starts after it. None: the walk wrapped around.
    cursor: uuid.UUID | None


def _walk(after: uuid.UUID | None, count: int, cap: int) -> Any:
    """The next `count` subscriptions by id, each with its key count up to cap + 1: one statement
    for many of them, never reading further into the index than that for any."""
    some = (select(literal(1)).where(events.c.subscription_id == subscriptions.c.id).limit(cap + 1)
            .correlate(subscriptions).subquery())
    held = select(func.count()).select_from(some).scalar_subquery()
    walk = select(subscriptions.c.id, held.label("held")).order_by(subscriptions.c.id).limit(count)
    return walk if after is None else walk.where(subscriptions.c.id > after)


async def _trim(conn: AsyncConnection, subscription_id: uuid.UUID, cap: int, limit: int) -> int:
    """Deletes up to `limit` of the non-pending keys beyond the newest `cap`, oldest first."""
    edge = (await conn.execute(
        select(events.c.last_seen_at, events.c.id).where(events.c.subscription_id == subscription_id)
        .order_by(events.c.last_seen_at.desc(), events.c.id.desc()).offset(cap).limit(1)
    )).first()
    if edge is None:
        return 0
    # One poll writes its keys with one timestamp: the id breaks the tie, as in the ordering above.
    # The bare `<=` bounds the index range; inside an OR, Postgres would read the subscription whole.
    beyond = (events.c.last_seen_at <= edge.last_seen_at,
              or_(events.c.last_seen_at < edge.last_seen_at, events.c.id <= edge.id))
    doomed = (
        select(events.c.id).where(events.c.subscription_id == subscription_id, events.c.state != PENDING, *beyond)
        .order_by(events.c.last_seen_at, events.c.id).limit(limit).with_for_update(skip_locked=True)
    )
    result = await conn.execute(delete(events).where(in_chosen(events.c.id, doomed, conn.dialect.name == "postgresql")))
    return result.rowcount or 0


async def cap_keys_once(
    engine: AsyncEngine, cap: int, *, after: uuid.UUID | None = None, batch: int = 1_000,
    per_pass: int = SUBSCRIPTIONS_PER_PASS, scan_budget: int = SCAN_BUDGET,
) -> CapPass:
    """One bounded pass from `after`: at most `batch` rows deleted, `per_pass` subscriptions
    looked at, and about `scan_budget` index entries read."""
    deleted = scanned = looked = 0
    cursor = after
    async with engine.connect() as conn:
        while looked < per_pass and scanned < scan_budget:
            # As many as the budget left can count in full, so that one statement never reads more.
            count = min(per_pass - looked, max(1, (scan_budget - scanned) // (cap + 1)))
            chunk = (await conn.execute(_walk(cursor, count, cap))).all()
            await conn.commit()
            for subscription_id, held in chunk:
                if deleted >= batch or scanned >= scan_budget:
                    return CapPass(deleted, cursor)
                scanned += held
                if held > cap:
                    room = batch - deleted
                    # A transaction each: on SQLite every one holds the write lock.
                    async with conn.begin():
                        trimmed = await _trim(conn, subscription_id, cap, room)
                    deleted += trimmed
                    if trimmed >= room:
                        # Perhaps more beyond the cap: the next pass starts with this subscription again.
                        return CapPass(deleted, cursor)
                cursor = subscription_id
            looked += len(chunk)
            if len(chunk) < count:
                return CapPass(deleted, None)  # the walk wrapped around
    return CapPass(deleted, cursor)
