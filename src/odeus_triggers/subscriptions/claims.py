"""Claiming subscriptions to poll, and fencing what a poll writes (RUNTIME.md, "Scheduling").

A claim moves `next_poll_at` forward by a lease and bumps `lease_epoch`, in one statement that
skips rows another worker holds. Whoever completes a poll writes only where the epoch is still
the one it claimed. A worker that dies leaves its rows due again when the lease runs out: there is
no reaper, leader or lock table.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

from sqlalchemy import DateTime, Integer, Interval, Table, bindparam, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.runtime_tables import Subscription
from ..db.sql import db_clock, in_chosen, in_list
from ..timestamps import as_utc, utcnow

subscriptions = cast(Table, Subscription.__table__)
# Literal, not a bound parameter, so that the planner can prove the partial index applies.
_ACTIVE = text("subscriptions.status = 'active'")


def _NOT_LEASED(now: Any) -> Any:  # noqa: N802 (reads as a condition, like _ACTIVE)
    return or_(subscriptions.c.lease_expires_at.is_(None), subscriptions.c.lease_expires_at <= now)


@dataclass(frozen=True, slots=True)
class Claimed:
    id: uuid.UUID
    workspace_id: uuid.UUID
    integration_id: uuid.UUID
    trigger_id: uuid.UUID
    lease_epoch: int
    due: datetime | None
    started_at: datetime


def _claimed(rows: Sequence[Any]) -> list[Claimed]:
    return [
        Claimed(r.id, r.workspace_id, r.integration_id, r.trigger_id, r.lease_epoch,
                as_utc(r.due) if r.due is not None else None, as_utc(r.started_at))
        for r in rows
    ]


@cache
def _claim_due_stmt(postgres: bool, excluding: bool) -> Any:
    """Built once per dialect, with the limit and the lease's end as parameters: the worker claims
    many times a second. On Postgres the times are `now()`; SQLite has no clock, so they come as
    parameters (`b_now`, `b_lease`), as `db_clock` gives them. `excluding` skips the workspaces in
    `b_busy`: those that already hold their share of the worker's slots."""
    if postgres:
        now: Any = func.now()
        lease_end = now + bindparam("b_lease", type_=Interval())
    else:
        now = bindparam("b_now", type_=DateTime(timezone=True))
        lease_end = bindparam("b_lease", type_=DateTime(timezone=True))
    # A PATCH (a shorter interval, a resume) can bring next_poll_at forward while a poll holds the
    # lease: the lease, not next_poll_at alone, says whether one is running.
    conditions = [_ACTIVE, subscriptions.c.next_poll_at <= now, _NOT_LEASED(now)]
    if excluding:
        conditions.append(~in_list(subscriptions.c.workspace_id, "b_busy", postgres))
    due = (
        select(subscriptions.c.id)
        .where(*conditions)
        .order_by(subscriptions.c.next_poll_at)
        .limit(bindparam("b_limit", type_=Integer()))
        .with_for_update(skip_locked=True)
    )
    return (
        update(subscriptions)
        .where(in_chosen(subscriptions.c.id, due, postgres))
        # SET reads the row as it was: claimed_due_at keeps the due time that the lease replaces.
        .values(
            claimed_due_at=subscriptions.c.next_poll_at, next_poll_at=lease_end, lease_expires_at=lease_end,
            lease_epoch=subscriptions.c.lease_epoch + 1,
        )
        .returning(
            subscriptions.c.id, subscriptions.c.workspace_id, subscriptions.c.integration_id,
            subscriptions.c.trigger_id, subscriptions.c.lease_epoch, subscriptions.c.claimed_due_at.label("due"),
            now.label("started_at"),
        )
    )


async def claim_due(
    conn: AsyncConnection, limit: int, lease_s: float, busy: Sequence[uuid.UUID] = ()
) -> list[Claimed]:
    """Up to `limit` due active subscriptions, the oldest due first, leased to the caller; none of
    the workspaces in `busy`."""
    lease = timedelta(seconds=lease_s)
    if conn.dialect.name == "postgresql":
        params: dict[str, Any] = {"b_limit": limit, "b_lease": lease}
    else:
        at = utcnow()
        params = {"b_limit": limit, "b_now": at, "b_lease": at + lease}
    if busy:
        params["b_busy"] = list(busy)
    stmt = _claim_due_stmt(conn.dialect.name == "postgresql", bool(busy))
    return _claimed((await conn.execute(stmt, params)).all())


async def claim_one(conn: AsyncConnection, subscription_id: uuid.UUID, lease_s: float) -> Claimed | None:
    """Lease one subscription now, whatever its due time or pause (a poll-now); None if it is not
    there, is disabled, or a poll of it holds a lease."""
    clock = db_clock(conn)
    lease_end = clock.plus(lease_s)
    stmt = (
        update(subscriptions)
        .where(
            subscriptions.c.id == subscription_id,
            subscriptions.c.status != "disabled",
            _NOT_LEASED(clock.now),
        )
        # next_poll_at moves too, so that the scheduler does not claim it meanwhile; the
        # completion sets it again.
        .values(
            claimed_due_at=clock.now, next_poll_at=lease_end, lease_expires_at=lease_end,
            lease_epoch=subscriptions.c.lease_epoch + 1,
        )
        .returning(
            subscriptions.c.id, subscriptions.c.workspace_id, subscriptions.c.integration_id,
            subscriptions.c.trigger_id, subscriptions.c.lease_epoch, clock.now.label("due"),
            clock.now.label("started_at"),
        )
    )
    claimed = _claimed((await conn.execute(stmt)).all())
    return claimed[0] if claimed else None


async def give_back(conn: AsyncConnection, claims: Sequence[Claimed]) -> None:
    """Hand leases back unused (a worker stopping, or a claim over a workspace's share): due at
    once, for any worker, at the due time the claim took, so that it keeps its place among the
    oldest due."""
    if not claims:
        return
    clock = db_clock(conn)
    stmt = (
        update(subscriptions)
        .where(subscriptions.c.id == bindparam("b_id"), subscriptions.c.lease_epoch == bindparam("b_epoch"))
        .values(next_poll_at=func.least(func.coalesce(subscriptions.c.claimed_due_at, clock.now), clock.now)
                if conn.dialect.name == "postgresql"
                else func.min(func.coalesce(subscriptions.c.claimed_due_at, clock.now), clock.now),
                lease_expires_at=None)
    )
    await conn.execute(stmt, [{"b_id": c.id, "b_epoch": c.lease_epoch} for c in claims])
