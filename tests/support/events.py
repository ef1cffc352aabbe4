"""Helpers of the event route tests: subscriptions whose polls deliver (backfillSince), and the rows
that only the dispatcher writes (states, attempts), set directly until it exists."""

import uuid
from datetime import datetime
from typing import Any, cast

import httpx
from sqlalchemy import Table, insert, select, update

from odeus_triggers.db.runtime_tables import DeliveryAttempt, TriggerEvent

from support.helpers import Tenant
from support.polls import Polled, counter_subscription

events_table = cast(Table, TriggerEvent.__table__)
attempts_table = cast(Table, DeliveryAttempt.__table__)
BACKFILL = "2024-05-01T00:00:00Z"


async def delivering_subscription(client: httpx.AsyncClient, app: Any, tenant: Tenant, count: int) -> Polled:
    """A subscription whose first poll-now found `count` pending events (`item-1` …)."""
    sub = await counter_subscription(client, app, tenant, inputs={"count": count}, backfillSince=BACKFILL)
    assert (await sub.poll())["new"] == count
    return sub


async def listed_events(sub: Polled, **params: Any) -> dict[str, Any]:
    response = await sub.client.get(sub.path + "/events", params=params, headers=sub.tenant.auth)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def event_by_key(sub: Polled, key: str) -> dict[str, Any]:
    found = [e for e in (await listed_events(sub, limit=200))["events"] if e["eventId"] == key]
    assert len(found) == 1, found
    return found[0]


async def event_row(app: Any, event_id: str) -> dict[str, Any]:
    async with app.state.engine.connect() as conn:
        row = (await conn.execute(select(events_table).where(events_table.c.id == event_id))).mappings().one()
    return dict(row)


async def set_event(app: Any, event_id: str, **values: Any) -> None:
    """Write what the dispatcher would (a state, attempts, a delivery) on one event."""
    async with app.state.engine.begin() as conn:
        await conn.execute(update(events_table).where(events_table.c.id == event_id).values(**values))


async def add_attempt(app: Any, event_id: str, at: datetime, status: int | None, error: str | None) -> None:
    async with app.state.engine.begin() as conn:
        await conn.execute(insert(attempts_table).values(
            id=uuid.uuid4(), event_id=event_id, attempted_at=at, status=status, duration_ms=12.345, error=error,
        ))
