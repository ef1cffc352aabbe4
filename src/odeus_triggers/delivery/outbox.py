"""The SQL of delivery (RUNTIME.md, "Delivery"): claim pending events, and write what each attempt
did, fenced on the event's `lease_epoch` as a poll is fenced on its subscription's.

A claim moves `next_attempt_at` forward by a lease and bumps `lease_epoch`, in one statement that
skips rows another worker holds. The results of a batch of attempts are one transaction: lock the
events and read their epochs, record every attempt, update the events one statement per shape,
and update their subscriptions (a 410, or five days of failures, disables one; a success clears
its failing clock). An event of a disabled subscription is held (`next_attempt_at` NULL) until a
PATCH makes the subscription active again.
"""

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

from sqlalchemy import DateTime, Integer, Interval, Table, bindparam, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.runtime_tables import DeliveryAttempt, Subscription, TriggerEvent
from ..db.sql import in_chosen, in_list, locked_epochs
from ..timestamps import as_utc, utcnow
from .sender import Outcome

log = logging.getLogger("odeus_triggers.delivery")

events = cast(Table, TriggerEvent.__table__)
subscriptions = cast(Table, Subscription.__table__)
attempts = cast(Table, DeliveryAttempt.__table__)

_TIMESTAMP = DateTime(timezone=True)
# Literal, not a bound parameter, so that the planner can prove the partial index applies.
_PENDING = text("trigger_events.state = 'pending'")
# A subscription whose attempts have failed, with no success in between, for this long is disabled.
FAILING_DISABLES_AFTER = timedelta(days=5)


@dataclass(frozen=True, slots=True)
class Pending:
    """A claimed event, with what its attempt needs from its subscription."""

    id: str  # msg_…: the webhook-id
    subscription_id: uuid.UUID
    lease_epoch: int
    attempts: int
    body: str | None
    first_seen_at: datetime
    webhook_url: str
    status: str
    signing_secret: str  # sealed
    previous_signing_secret: str | None  # sealed
    previous_until: datetime | None
    failing: bool  # the subscription's deliveries have been failing (delivery_failing_since is set)


def _clock(postgres: bool) -> Any:
    return func.now() if postgres else bindparam("b_now", type_=_TIMESTAMP)


def _after(postgres: bool, name: str) -> Any:
    """`now() + interval` on Postgres; an absolute time as a parameter on SQLite (no clock there)."""
    if postgres:
        return func.now() + bindparam(name, type_=Interval())
    return bindparam(name, type_=_TIMESTAMP)


def _times(postgres: bool, **delays: float) -> dict[str, Any]:
    if postgres:
        return {name: timedelta(seconds=s) for name, s in delays.items()}
    now = utcnow()
    return {"b_now": now, **{name: now + timedelta(seconds=s) for name, s in delays.items()}}


@cache
def _claim_stmt(postgres: bool, skipping: bool) -> Any:
    now = _clock(postgres)
    lease_end = _after(postgres, "b_lease")
    conditions = [_PENDING, events.c.next_attempt_at <= now]
    if skipping:
        conditions.append(~in_list(events.c.subscription_id, "b_skip", postgres))
    due = (
        select(events.c.id)
        .where(*conditions)
        .order_by(events.c.next_attempt_at)
        .limit(bindparam("b_limit", type_=Integer()))
        .with_for_update(skip_locked=True)
    )
    return (
        update(events)
        .where(in_chosen(events.c.id, due, postgres))
        .values(next_attempt_at=lease_end, lease_expires_at=lease_end, lease_epoch=events.c.lease_epoch + 1)
        .returning(
            events.c.id, events.c.subscription_id, events.c.lease_epoch, events.c.attempts, events.c.body,
            events.c.first_seen_at,
        )
    )


@cache
def _destinations(postgres: bool) -> Any:
    return select(
        subscriptions.c.id, subscriptions.c.webhook_url, subscriptions.c.status, subscriptions.c.signing_secret,
        subscriptions.c.previous_signing_secret, subscriptions.c.previous_signing_secret_until,
        subscriptions.c.delivery_failing_since,
    ).where(in_list(subscriptions.c.id, "b_ids", postgres))


async def claim(
    conn: AsyncConnection, limit: int, lease_s: float, skip: Sequence[uuid.UUID] = ()
) -> list[Pending]:
    """Up to `limit` pending events that are due, the longest waiting first, leased to the caller,
    with their subscriptions' webhook and signing secrets (two statements for the batch); none of
    the subscriptions in `skip`."""
    postgres = conn.dialect.name == "postgresql"
    params = {"b_limit": limit, **_times(postgres, b_lease=lease_s)}
    if skip:
        params["b_skip"] = list(skip)
    rows = (await conn.execute(_claim_stmt(postgres, bool(skip)), params)).all()
    if not rows:
        return []
    subs = {
        s.id: s for s in await conn.execute(_destinations(postgres), {"b_ids": list({r.subscription_id for r in rows})})
    }
    return [
        Pending(
            r.id, r.subscription_id, r.lease_epoch, r.attempts, r.body, as_utc(r.first_seen_at), s.webhook_url,
            s.status, s.signing_secret, s.previous_signing_secret,
            as_utc(s.previous_signing_secret_until) if s.previous_signing_secret_until else None,
            s.delivery_failing_since is not None,
        )
        for r in rows if (s := subs.get(r.subscription_id)) is not None
    ]


@cache
def _release_stmt(postgres: bool, hold: bool) -> Any:
    return (
        update(events)
        .where(events.c.id == bindparam("b_id"), events.c.lease_epoch == bindparam("b_epoch"))
        .values(next_attempt_at=None if hold else _after(postgres, "b_at"), lease_expires_at=None)
    )


async def release(conn: AsyncConnection, items: Sequence[Pending], *, in_s: float | None) -> None:
    """Hand claimed events back without an attempt: due again in `in_s` seconds, or held (None)
    until their subscription is active again."""
    if not items:
        return
    postgres = conn.dialect.name == "postgresql"
    times = _times(postgres, b_at=in_s or 0.0)
    params = [{"b_id": p.id, "b_epoch": p.lease_epoch, **times} for p in items]
    await conn.execute(_release_stmt(postgres, in_s is None), params)


@dataclass(eq=False)
class Attempted:
    """One attempt's result, and what follows: the next attempt in `next_in_s`, or none."""

    event: Pending
    outcome: Outcome
    at: datetime
    next_in_s: float | None
    written: bool = False  # False: the event was taken again meanwhile (redelivered), or deleted


_INSERT_ATTEMPTS = insert(attempts)


@cache
def _event_stmt(postgres: bool, shape: str) -> Any:
    values: dict[str, Any] = {
        "attempts": events.c.attempts + 1, "last_status": bindparam("b_status", type_=Integer()),
        "last_error": bindparam("b_error", type_=events.c.last_error.type), "lease_expires_at": None,
        "next_attempt_at": None,
    }
    if shape == "delivered":
        values.update(state="delivered", delivered_at=_clock(postgres))
    elif shape == "retry":
        values["next_attempt_at"] = _after(postgres, "b_next")
    elif shape == "failed":
        values["state"] = "failed"
    # "gone": still pending, held until the subscription is active again.
    return (
        update(events)
        .where(events.c.id == bindparam("b_id"), events.c.lease_epoch == bindparam("b_epoch"))
        .values(**values)
    )


def _shape(a: Attempted) -> str:
    if a.outcome.kind in ("delivered", "gone"):
        return a.outcome.kind
    return "retry" if a.next_in_s is not None else "failed"


async def write(conn: AsyncConnection, batch: Sequence[Attempted]) -> None:
    """Record a batch of attempts in the caller's transaction."""
    postgres = conn.dialect.name == "postgresql"
    epochs = dict((await conn.execute(locked_epochs(events, postgres), {"b_ids": [a.event.id for a in batch]})).all())
    there = [a for a in batch if a.event.id in epochs]
    if not there:
        return
    # Every attempt that was made is recorded, even one whose lease another claim has taken since.
    await conn.execute(_INSERT_ATTEMPTS, [
        {"id": uuid.uuid4(), "event_id": a.event.id, "attempted_at": a.at, "status": a.outcome.status,
         "duration_ms": a.outcome.duration_ms, "error": a.outcome.error}
        for a in there
    ])
    shapes: dict[str, list[dict[str, Any]]] = {}
    for a in there:
        if epochs[a.event.id] != a.event.lease_epoch:
            continue
        a.written = True
        times = _times(postgres, b_next=a.next_in_s or 0.0)
        shapes.setdefault(_shape(a), []).append({
            "b_id": a.event.id, "b_epoch": a.event.lease_epoch, "b_status": a.outcome.status,
            "b_error": a.outcome.error, **times,
        })
    for shape, params in shapes.items():
        await conn.execute(_event_stmt(postgres, shape), params)
    disabled = await _subscriptions_after(conn, postgres, [a for a in there if a.written])
    for subscription_id in disabled:
        log.warning("a subscription was disabled by its deliveries", extra={"subscription_id": str(subscription_id)})


async def _subscriptions_after(conn: AsyncConnection, postgres: bool, written: list[Attempted]) -> list[uuid.UUID]:
    succeeded = list({a.event.subscription_id for a in written if a.outcome.kind == "delivered"})
    # Only a subscription whose deliveries were failing has a clock to clear.
    recovered = list({a.event.subscription_id for a in written if a.outcome.kind == "delivered" and a.event.failing})
    failed = list({a.event.subscription_id for a in written if a.outcome.kind == "failed"} - set(succeeded))
    gone = list({a.event.subscription_id for a in written if a.outcome.kind == "gone"})
    now = _clock(postgres)
    times = _times(postgres)
    if recovered:
        await conn.execute(
            update(subscriptions)
            .where(in_list(subscriptions.c.id, "b_ids", postgres), subscriptions.c.delivery_failing_since.is_not(None))
            .values(delivery_failing_since=None), {"b_ids": recovered, **times},
        )
    disabled: list[uuid.UUID] = []
    if failed:
        await conn.execute(
            update(subscriptions)
            .where(in_list(subscriptions.c.id, "b_ids", postgres), subscriptions.c.delivery_failing_since.is_(None))
            .values(delivery_failing_since=now), {"b_ids": failed, **times},
        )
        limit = now - FAILING_DISABLES_AFTER if postgres else utcnow() - FAILING_DISABLES_AFTER
        disabled += await _disable(conn, failed, "delivery_failing", times,
                                   subscriptions.c.delivery_failing_since <= limit)
    if gone:
        disabled += await _disable(conn, gone, "webhook_gone", times)
    if disabled:
        await conn.execute(
            update(events)
            .where(in_list(events.c.subscription_id, "b_ids", postgres), _PENDING, events.c.next_attempt_at.is_not(None))
            .values(next_attempt_at=None), {"b_ids": disabled},
        )
    return disabled


async def _disable(
    conn: AsyncConnection, ids: list[uuid.UUID], reason: str, times: dict[str, Any], *conditions: Any
) -> list[uuid.UUID]:
    postgres = conn.dialect.name == "postgresql"
    stmt = (
        update(subscriptions)
        .where(in_list(subscriptions.c.id, "b_ids", postgres), subscriptions.c.status != "disabled", *conditions)
        .values(status="disabled", paused_reason=reason, updated_at=_clock(postgres))
        .returning(subscriptions.c.id)
    )
    return list((await conn.execute(stmt, {"b_ids": ids, **times})).scalars())
