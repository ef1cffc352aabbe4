"""The SQL of the event routes and of the signing-secret rotation."""

import uuid
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Row, Table, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ..api.pagination import Page
from ..db.runtime_tables import DeliveryAttempt, Subscription, TriggerEvent
from ..db.sql import db_clock
from ..timestamps import utcnow

events = cast(Table, TriggerEvent.__table__)
attempts = cast(Table, DeliveryAttempt.__table__)
subscriptions = cast(Table, Subscription.__table__)

SHOWN_ATTEMPTS = 10
# RUNTIME.md, "Delivery": for 24 h after a rotation, the replaced secret signs too.
PREVIOUS_SECRET_KEPT_S = 86_400


async def page_of_events(
    engine: AsyncEngine, subscription_id: uuid.UUID, state: str | None, page: Page
) -> Sequence[Row[Any]]:
    """One page, newest first, plus one row that says whether there is a next page."""
    stmt = select(events).where(events.c.subscription_id == subscription_id)
    if state is not None:
        stmt = stmt.where(events.c.state == state)
    if page.after is not None:
        stmt = stmt.where(tuple_(events.c.first_seen_at, events.c.id) < tuple_(page.after.at, page.after.id))
    stmt = stmt.order_by(events.c.first_seen_at.desc(), events.c.id.desc()).limit(page.limit + 1)
    async with engine.connect() as conn:
        return (await conn.execute(stmt)).all()


async def read_event(
    engine: AsyncEngine, subscription_id: uuid.UUID, event_id: str
) -> tuple[Row[Any], Sequence[Row[Any]]] | None:
    """The event with its last attempts, newest first; None when it is not one of this subscription."""
    async with engine.connect() as conn:
        row = (await conn.execute(
            select(events).where(events.c.id == event_id, events.c.subscription_id == subscription_id)
        )).first()
        if row is None:
            return None
        tried = (await conn.execute(
            select(attempts).where(attempts.c.event_id == event_id)
            .order_by(attempts.c.attempted_at.desc(), attempts.c.id.desc()).limit(SHOWN_ATTEMPTS)
        )).all()
    return row, tried


async def requeue(engine: AsyncEngine, subscription_id: uuid.UUID, event_id: str) -> tuple[Row[Any] | None, bool]:
    """Make the event due now; returns its row (None when it is not one of this subscription) and
    whether it was queued (not when it has no body to send).

    `attempts` stays: the dispatcher fails an event whose attempts reach the end of the schedule, so
    an event past it gets exactly one more attempt, and one within it goes on with the schedule.
    The new epoch fences out an attempt in flight under the old lease: its result cannot overwrite
    this. `deliveredAt`, `lastStatus` and `lastError` stay as the history of the last attempts."""
    async with engine.begin() as conn:
        result = await conn.execute(
            update(events)
            .where(events.c.id == event_id, events.c.subscription_id == subscription_id, events.c.body.is_not(None))
            .values(
                state="pending", next_attempt_at=db_clock(conn).now, lease_epoch=events.c.lease_epoch + 1,
                lease_expires_at=None,
            )
        )
        row = (await conn.execute(
            select(events).where(events.c.id == event_id, events.c.subscription_id == subscription_id)
        )).first()
    return row, result.rowcount > 0


async def rotate_signing_secret(
    engine: AsyncEngine, integration_id: uuid.UUID, trigger_id: uuid.UUID, subscription_id: uuid.UUID, sealed: str
) -> bool:
    """Store `sealed` as the signing secret, the current one becoming the previous one; False when the
    subscription is not one of this trigger of this integration.

    One statement, so two rotations at once cannot lose a secret: each moves the value it replaces.
    The token moves as it is, because both columns are sealed with the same context. The previous
    one's end is by the database's clock, which the dispatcher compares it with."""
    async with engine.begin() as conn:
        result = await conn.execute(
            update(subscriptions)
            .where(
                subscriptions.c.id == subscription_id,
                subscriptions.c.integration_id == integration_id,
                subscriptions.c.trigger_id == trigger_id,
            )
            .values(
                previous_signing_secret=subscriptions.c.signing_secret, signing_secret=sealed,
                previous_signing_secret_until=db_clock(conn).plus(PREVIOUS_SECRET_KEPT_S), updated_at=utcnow(),
            )
        )
    return result.rowcount > 0
