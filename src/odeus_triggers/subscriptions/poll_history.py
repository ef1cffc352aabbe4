"""The SQL of the poll routes: a subscription's scope and status, and its recent poll runs."""

import uuid
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Row, Table, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from ..api.pagination import Page
from ..db.runtime_tables import PollRun, Subscription
from ..db.sql import db_clock
from ..errors import SubscriptionNotFound

subscriptions = cast(Table, Subscription.__table__)
poll_runs = cast(Table, PollRun.__table__)

# Runs older than this are swept; the list never shows them, swept yet or not.
KEPT_S = 7 * 86_400


async def scoped_status(
    engine: AsyncEngine, integration_id: uuid.UUID, trigger_id: uuid.UUID, subscription_id: uuid.UUID
) -> str:
    """The subscription's status; SubscriptionNotFound when it is not one of this trigger of this
    integration."""
    async with engine.connect() as conn:
        status = await conn.scalar(
            select(subscriptions.c.status).where(
                subscriptions.c.id == subscription_id,
                subscriptions.c.integration_id == integration_id,
                subscriptions.c.trigger_id == trigger_id,
            )
        )
    if status is None:
        raise SubscriptionNotFound()
    return str(status)


async def recent_runs(
    engine: AsyncEngine, subscription_id: uuid.UUID, page: Page, before_id: uuid.UUID | None
) -> Sequence[Row[Any]]:
    """One page, newest first, plus one row that says whether there is a next page."""
    async with engine.connect() as conn:
        stmt = select(poll_runs).where(
            poll_runs.c.subscription_id == subscription_id,
            poll_runs.c.started_at >= db_clock(conn).plus(-KEPT_S),
        )
        if page.after is not None and before_id is not None:
            stmt = stmt.where(tuple_(poll_runs.c.started_at, poll_runs.c.id) < tuple_(page.after.at, before_id))
        stmt = stmt.order_by(poll_runs.c.started_at.desc(), poll_runs.c.id.desc()).limit(page.limit + 1)
        return (await conn.execute(stmt)).all()
