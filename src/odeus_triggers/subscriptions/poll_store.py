"""The SQL of polling: what a batch of polls needs to run, and the statements of their result
(RUNTIME.md, "Polling"), which `poll_write` puts together in one fenced transaction.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

from sqlalchemy import DateTime, Integer, Interval, Table, and_, bindparam, case, func, literal, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..db.runtime_tables import IntegrationSecret, PollRun, Subscription, SubscriptionSecret, TriggerEvent
from ..db.sql import db_clock, in_list, upsert_insert
from ..db.tables import Trigger
from ..timestamps import utcnow
from .claims import Claimed
from .schedule import PauseRule

subscriptions = cast(Table, Subscription.__table__)
subscription_secrets = cast(Table, SubscriptionSecret.__table__)
integration_secrets = cast(Table, IntegrationSecret.__table__)
triggers = cast(Table, Trigger.__table__)
events = cast(Table, TriggerEvent.__table__)
poll_runs = cast(Table, PollRun.__table__)

# Rows per INSERT of a seeding poll (up to 1,000 events): well under SQLite's variable limit.
SEED_CHUNK = 200


# The statements of every poll are built once, with bound parameters: building them per poll cost
# more of the worker's CPU than running them, and a statement built once also keeps its cache key.
@cache
def _load_subscriptions(postgres: bool) -> Any:
    return (
        select(
            subscriptions.c.id, subscriptions.c.status, subscriptions.c.inputs, subscriptions.c.sealed_inputs,
            subscriptions.c.interval_seconds, subscriptions.c.backfill_since, subscriptions.c.last_poll_time,
            subscriptions.c.seeded_at, subscriptions.c.consecutive_failures, triggers.c.slug,
            triggers.c.updated_at.label("trigger_version"),
    )
        .select_from(subscriptions.join(triggers, triggers.c.id == subscriptions.c.trigger_id))
        .where(in_list(subscriptions.c.id, "b_ids", postgres))
    )


async def load_subscriptions(conn: AsyncConnection, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Any]:
    """What the polls of these subscriptions run with, in one query for a whole claimed batch."""
    stmt = _load_subscriptions(conn.dialect.name == "postgresql")
    return {row.id: row for row in await conn.execute(stmt, {"b_ids": list(ids)})}


@cache
def _secret_tokens(postgres: bool) -> Any:
    return union_all(
        select(
            literal(False).label("own"), integration_secrets.c.integration_id.label("owner"),
            integration_secrets.c.name, integration_secrets.c.token,
        ).where(in_list(integration_secrets.c.integration_id, "b_integration_ids", postgres)),
        select(
            literal(True).label("own"), subscription_secrets.c.subscription_id.label("owner"),
            subscription_secrets.c.name, subscription_secrets.c.token,
        ).where(in_list(subscription_secrets.c.subscription_id, "b_subscription_ids", postgres)),
    )


async def secret_tokens(
    conn: AsyncConnection, claims: Sequence[Claimed]
) -> dict[uuid.UUID, list[tuple[bool, str, str]]]:
    """The sealed secrets the polls of a batch run with, in one query: for each subscription,
    (is its own, name, token), the integration's first, so that its own win a merge by name."""
    rows = (await conn.execute(_secret_tokens(conn.dialect.name == "postgresql"), {
        "b_integration_ids": list({c.integration_id for c in claims}),
        "b_subscription_ids": [c.id for c in claims],
    })).all()
    by_owner: dict[uuid.UUID, list[tuple[bool, str, str]]] = {}
    for own, owner, name, token in rows:
        by_owner.setdefault(owner, []).append((bool(own), name, token))
    return {
        c.id: [*by_owner.get(c.integration_id, ()), *by_owner.get(c.id, ())] for c in claims
    }


@dataclass(frozen=True, slots=True)
class NewEvent:
    id: str  # msg_…
    key: str
    body: str | None  # None for a seeded event: it is never sent


async def insert_events(
    conn: AsyncConnection, offered: Sequence[tuple[uuid.UUID, NewEvent, str, datetime]]
) -> set[str]:
    """Insert the offered events that are new, and touch `last_seen_at` of those already seen, in
    one statement whatever their subscriptions; returns the ids of the new ones. An existing row
    keeps its own id, so the returned id tells them apart. Each item is (subscription, event,
    state, seen at)."""
    if not offered:
        return set()
    rows = [
        {
            "id": e.id, "subscription_id": subscription_id, "event_key": e.key, "state": state, "body": e.body,
            "first_seen_at": now, "last_seen_at": now, "attempts": 0, "last_status": None, "last_error": None,
            "next_attempt_at": now if state == "pending" else None, "lease_epoch": 0, "lease_expires_at": None,
            "delivered_at": None,
        }
        for subscription_id, e, state, now in offered
    ]
    stmt = upsert_insert(conn, events).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=["subscription_id", "event_key"], set_={"last_seen_at": stmt.excluded.last_seen_at}
    ).returning(events.c.id)
    ids = {e.id for _, e, _, _ in offered}
    return {row_id for (row_id,) in await conn.execute(stmt) if row_id in ids}


@dataclass(frozen=True, slots=True)
class Completion:
    """What a finished poll writes to its subscription."""

    success: bool
    capped: bool
    seeded: bool
    invalid_output: bool
    error: dict[str, Any] | None
    next_in_s: float


_TIMESTAMP = DateTime(timezone=True)


@cache
def finish_stmt(postgres: bool, success: bool, seeded: bool, capped: bool, invalid_output: bool) -> Any:
    """The UPDATE of a finished poll, one per shape, run with many parameter sets at once. The
    rows are locked and their epochs checked before (`poll_write`); the epoch stays in the WHERE
    all the same. On Postgres the times are the database's clock (`now()` plus intervals); SQLite
    has none, so they come as parameters (`b_now` and the times themselves), as `db_clock` gives
    them."""
    if postgres:
        now: Any = func.now()

        def at(name: str) -> Any:
            return now + bindparam(name, type_=Interval())
    else:
        now = bindparam("b_now", type_=_TIMESTAMP)

        def at(name: str) -> Any:
            return bindparam(name, type_=_TIMESTAMP)

    values: dict[str, Any] = {
        "lease_expires_at": None, "last_polled_at": now, "updated_at": now, "next_poll_at": at("b_next"),
    }
    if success:
        values.update(
            consecutive_failures=0, failing_since=None, consecutive_invalid_outputs=0, last_error=None,
            last_succeeded_at=now,
        )
        if seeded:
            values["seeded_at"] = now
        if not capped:
            # The start of this poll, by the database's clock: the next poll covers what came after.
            values["last_poll_time"] = bindparam("b_started_at", type_=subscriptions.c.last_poll_time.type)
    else:
        # The counts are read in SQL, from what is stored: a resume may have reset them meanwhile.
        failures = subscriptions.c.consecutive_failures + 1
        invalid = subscriptions.c.consecutive_invalid_outputs + 1 if invalid_output else literal(0)
        failing_since = func.coalesce(subscriptions.c.failing_since, bindparam("b_failing_from", type_=_TIMESTAMP))
        stuck_invalid = invalid >= bindparam("b_invalid_outputs", type_=Integer())
        stuck_failing = and_(
            failures >= bindparam("b_failures", type_=Integer()), failing_since <= at("b_failing_before")
        )
        pause = and_(subscriptions.c.status == "active", stuck_invalid | stuck_failing)
        values.update(
            consecutive_failures=failures, consecutive_invalid_outputs=invalid, failing_since=failing_since,
            last_error=bindparam("b_error", type_=subscriptions.c.last_error.type),
            status=case((pause, "paused_errors"), else_=subscriptions.c.status),
            paused_reason=case(
                (and_(pause, stuck_invalid), "invalid_output"), (pause, "failing"),
                else_=subscriptions.c.paused_reason,
            ),
        )
    return (
        update(subscriptions)
        .where(subscriptions.c.id == bindparam("b_id"), subscriptions.c.lease_epoch == bindparam("b_epoch"))
        .values(**values)
    )


def finish_params(
    postgres: bool, claim: Claimed, done: Completion, rule: PauseRule
) -> tuple[tuple[bool, bool, bool, bool], dict[str, Any]]:
    """The shape of `finish_stmt` that a completion needs, and its parameters."""
    success = done.success
    shape = (success, success and done.seeded, success and done.capped, not success and done.invalid_output)
    params: dict[str, Any] = {"b_id": claim.id, "b_epoch": claim.lease_epoch, "b_started_at": claim.started_at}
    if postgres:
        params["b_next"] = timedelta(seconds=done.next_in_s)
    else:
        # The embedded SQLite has no clock of its own: this process's, read once, as db_clock does.
        at = utcnow()
        params["b_now"] = at
        params["b_next"] = at + timedelta(seconds=done.next_in_s)
    if not success:
        params.update(
            b_failing_from=claim.started_at, b_invalid_outputs=rule.invalid_outputs, b_failures=rule.failures,
            b_error=done.error,
            b_failing_before=timedelta(seconds=-rule.failing_s) if postgres
            else params["b_now"] + timedelta(seconds=-rule.failing_s),
        )
    return shape, params


async def release_lease(engine: AsyncEngine, claim: Claimed, retry_in_s: float) -> None:
    """The poll could not run at all (the sandbox is down): due again soon, nothing counted."""
    async with engine.begin() as conn:
        await conn.execute(
            update(subscriptions)
            .where(subscriptions.c.id == claim.id, subscriptions.c.lease_epoch == claim.lease_epoch)
            .values(lease_expires_at=None, next_poll_at=db_clock(conn).plus(retry_in_s))
        )
