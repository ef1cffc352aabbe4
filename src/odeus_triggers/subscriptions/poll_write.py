"""The fenced result of finished polls: one transaction for a batch of them (RUNTIME.md, "Polling").

Per batch, whatever its size: lock the subscriptions' rows and read their epochs (the fence), insert
every poll's events in multi-row statements (the unique key decides which are new; nothing is
SELECTed first), update the subscriptions one statement per shape, and insert the poll-run records.
A poll whose claim lost its lease writes nothing but a `lease_lost` run; one whose subscription was
deleted meanwhile writes nothing at all. Batching is what keeps the database's commit rate from
limiting the scheduler: a commit per batch, not four round trips per poll.
"""

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.sql import locked_epochs
from .claims import Claimed
from .poll_store import SEED_CHUNK, Completion, NewEvent, finish_params, finish_stmt, insert_events, poll_runs, subscriptions
from .schedule import PauseRule, failure_delay, success_delay

# Problems that will not fix themselves: the subscription is paused on the spot.
PAUSING_CODES = ("inputs_invalid", "no_polling_code")


@dataclass(eq=False)
class Finished:
    """One poll whose code has run (or could not, for a reason that counts as a failure)."""

    claim: Claimed
    outcome: str  # ok, error, timeout, invalid_output
    error: dict[str, Any] | None
    returned: int
    seeding: bool
    interval_seconds: int
    failures_before: int
    began: float  # time.monotonic() when the poll began
    # (key, event) in the order returned; a key is the event's dedupe key.
    keyed: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # The stored body of a new pending event; None when seeding (a seeded event is never sent).
    body_of: Callable[[dict[str, Any]], str] | None = None
    # Filled in by the write.
    run: dict[str, Any] = field(default_factory=dict)
    new: int = 0
    seeded: int = 0
    capped: bool = False
    written: bool = False  # False: the subscription is gone, nothing was recorded
    offset: int = 0

    @property
    def success(self) -> bool:
        return self.outcome == "ok"

    def reset(self) -> None:
        """Forget what an earlier attempt at writing it counted: that attempt was rolled back, and a
        stale offset would skip events."""
        self.new = self.seeded = self.offset = 0
        self.capped = self.written = False


def new_event_id() -> str:
    return "msg_" + uuid.uuid4().hex


_INSERT_RUNS = insert(poll_runs)
_PAUSE = (
    update(subscriptions)
    .where(subscriptions.c.id == bindparam("b_id"), subscriptions.c.status == "active")
    .values(status="paused_errors", paused_reason=bindparam("b_reason"))
)


async def write(conn: AsyncConnection, batch: Sequence[Finished], max_new: int, rule: PauseRule) -> None:
    """Write a batch of finished polls in the caller's transaction; each item's `run`, counts and
    `written` say what was recorded."""
    postgres = conn.dialect.name == "postgresql"
    epochs = dict((await conn.execute(locked_epochs(subscriptions, postgres), {"b_ids": [f.claim.id for f in batch]})).all())
    live: list[Finished] = []
    for f in batch:
        f.reset()
        f.written = f.claim.id in epochs
        f.run = run_record(f)
        if epochs.get(f.claim.id) == f.claim.lease_epoch:
            live.append(f)
        elif f.written:
            f.run["outcome"] = "lease_lost"
    await _insert_events(conn, [f for f in live if f.success and f.keyed], max_new)
    await _finish(conn, live, postgres, rule)
    pausing = [{"b_id": f.claim.id, "b_reason": f.error["code"]} for f in live
               if f.error and f.error.get("code") in PAUSING_CODES]
    if pausing:
        await conn.execute(_PAUSE, pausing)
    runs = []
    for f in batch:
        if f.written:
            f.run.update(new=f.new, capped=f.capped)
            runs.append(f.run)
    if runs:
        await conn.execute(_INSERT_RUNS, runs)


async def _insert_events(conn: AsyncConnection, polls: list[Finished], max_new: int) -> None:
    """Rounds of multi-row INSERTs over every poll that still has events to offer: each offers no
    more than the room left under its cap, so that the excess is never recorded as seen and comes
    again on the next poll. A seeding poll has no cap; it delivers nothing."""
    while polls:
        offered: list[tuple[Finished, NewEvent]] = []
        for f in polls:
            room = SEED_CHUNK if f.seeding else min(max_new - f.new, SEED_CHUNK)
            chunk = f.keyed[f.offset : f.offset + room]
            f.offset += len(chunk)
            body_of = None if f.seeding else f.body_of
            offered += [(f, NewEvent(new_event_id(), key, body_of(event) if body_of else None)) for key, event in chunk]
        for i in range(0, len(offered), SEED_CHUNK):
            part = offered[i : i + SEED_CHUNK]
            new_ids = await insert_events(conn, [(f.claim.id, e, "seeded" if f.seeding else "pending", f.claim.started_at)
                                                 for f, e in part])
            for f, e in part:
                if e.id in new_ids:
                    if f.seeding:
                        f.seeded += 1
                    else:
                        f.new += 1
        polls = [f for f in polls if f.offset < len(f.keyed) and (f.seeding or f.new < max_new)]


async def _finish(conn: AsyncConnection, live: list[Finished], postgres: bool, rule: PauseRule) -> None:
    """The subscriptions' new state, one executemany per shape of completion."""
    shapes: dict[tuple[bool, bool, bool, bool], list[dict[str, Any]]] = {}
    for f in live:
        f.capped = f.success and not f.seeding and f.offset < len(f.keyed)
        done = Completion(
            success=f.success, capped=f.capped, seeded=f.seeding and f.success,
            invalid_output=f.outcome == "invalid_output", error=f.error,
            next_in_s=next_in_s(f, f.capped),
        )
        shape, params = finish_params(postgres, f.claim, done, rule)
        shapes.setdefault(shape, []).append(params)
    for shape, many in shapes.items():
        await conn.execute(finish_stmt(postgres, *shape), many)


def next_in_s(f: Finished, capped: bool) -> float:
    """When the subscription is due again: at once after a capped poll (the rest of its events are
    waiting), after its interval after a success, on the backoff after a failure."""
    if f.success:
        return 0.0 if capped else success_delay(f.interval_seconds)
    return failure_delay(f.interval_seconds, f.failures_before + 1)


def run_record(f: Finished) -> dict[str, Any]:
    """The poll-run record as the poll's own outcome makes it; the write sets what it finds (the new
    events, a cap, a lost lease)."""
    elapsed = time.monotonic() - f.began
    return {
        "id": uuid.uuid4(), "subscription_id": f.claim.id, "started_at": f.claim.started_at,
        "finished_at": f.claim.started_at + timedelta(seconds=elapsed), "duration_ms": elapsed * 1000,
        "outcome": "seeded" if f.outcome == "ok" and f.seeding else f.outcome, "returned": f.returned,
        "new": 0, "capped": False, "error": f.error,
    }
