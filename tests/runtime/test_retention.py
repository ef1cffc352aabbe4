"""Delivery retention (RUNTIME.md, delivery issue item 5): a delivered event's body is cleared 7
days after its delivery, its key staying; a failed event keeps its body, since it can be
redelivered by hand, and a pending one is untouched whatever its age; attempts are kept 30 days.
The events come from a real poll; their delivery is aged with SQL, and one sweep pass at a time
runs, a bounded batch each."""

from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import Table, select

from odeus_triggers.db.runtime_tables import DeliveryAttempt, TriggerEvent
from odeus_triggers.runtime.sweeper import sweep_once
from odeus_triggers.timestamps import as_utc

from support.events import add_attempt, delivering_subscription, event_by_key, event_row, set_event
from support.helpers import assert_problem

events = cast(Table, TriggerEvent.__table__)
attempts = cast(Table, DeliveryAttempt.__table__)

RETENTION = ("event_bodies", "delivery_attempts")


async def _drain(engine) -> None:
    """Sweeps what earlier tests left to sweep, so that the counts below are this test's rows."""
    for _ in range(100):
        if not any((await sweep_once(engine)).values()):
            return
    raise AssertionError("the sweep never ran out of rows")


async def _pass(engine) -> dict[str, int]:
    done = await sweep_once(engine, batch=2)
    return {k: done[k] for k in RETENTION}


async def test_delivered_bodies_and_old_attempts_go_in_bounded_batches(app, client, tenant):
    engine = app.state.engine
    await _drain(engine)
    sub = await delivering_subscription(client, app, tenant, count=7)
    ids = {f"item-{n}": (await event_by_key(sub, f"item-{n}"))["id"] for n in range(1, 8)}
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=8), now - timedelta(days=6)
    # What the dispatcher writes, aged: three deliveries older than 7 days, one younger; a failed
    # event and a pending one (both redelivered after an old delivery); item-7 is pending, never sent.
    for key in ("item-1", "item-2", "item-3"):
        await set_event(app, ids[key], state="delivered", attempts=1, last_status=200, delivered_at=old)
    await set_event(app, ids["item-4"], state="delivered", attempts=1, last_status=200, delivered_at=recent)
    await set_event(app, ids["item-5"], state="failed", attempts=11, last_status=503, delivered_at=old)
    await set_event(app, ids["item-6"], state="pending", attempts=2, last_status=200, delivered_at=old)
    # Three attempts older than 30 days and two younger, on events of every state.
    for key, age in (("item-1", 31), ("item-5", 40), ("item-7", 31), ("item-1", 29), ("item-6", 1)):
        await add_attempt(app, ids[key], now - timedelta(days=age), 200, None)

    async with engine.connect() as conn:
        before = {r.id: r for r in (await conn.execute(select(events).where(events.c.id.in_(ids.values()))))}

    assert await _pass(engine) == {"event_bodies": 2, "delivery_attempts": 2}
    assert await _pass(engine) == {"event_bodies": 1, "delivery_attempts": 1}
    assert await _pass(engine) == {"event_bodies": 0, "delivery_attempts": 0}

    cleared = {ids[k] for k in ("item-1", "item-2", "item-3")}
    for event_id, was in before.items():
        row = await event_row(app, event_id)
        assert was.body is not None
        # Only the body changes, and only a delivery's older than 7 days; the key and state stay.
        expected = {**dict(was._mapping), "body": None if event_id in cleared else was.body}
        assert row == expected, event_id

    async with engine.connect() as conn:
        kept = (await conn.execute(
            select(attempts.c.event_id, attempts.c.attempted_at).where(attempts.c.event_id.in_(ids.values()))
        )).all()
    assert sorted((event_id, round((now - as_utc(at)).total_seconds() / 86_400)) for event_id, at in kept) == sorted(
        [(ids["item-1"], 29), (ids["item-6"], 1)]
    )

    # The API: a cleared event reads with `data: null`, and has nothing left to redeliver.
    shown = await event_by_key(sub, "item-1")
    assert (shown["state"], shown["data"]) == ("delivered", None)
    assert (await event_by_key(sub, "item-4"))["data"] == {"id": "item-4", "lastPollTime": "2024-05-01T00:00:00.000Z"}
    assert (await event_by_key(sub, "item-5"))["data"] is not None
    response = await client.post(f"{sub.path}/events/{ids['item-1']}/redeliver", headers=tenant.auth)
    assert_problem(response, 409, "event_not_deliverable")
    # A failed event, older than 7 days, can still be redelivered: its body was kept.
    response = await client.post(f"{sub.path}/events/{ids['item-5']}/redeliver", headers=tenant.auth)
    assert response.status_code == 202, response.text


async def test_a_redelivered_event_is_pending_again_and_keeps_its_body(app, client, tenant):
    """A delivery older than 7 days that was redelivered is owed again: the sweep leaves it alone
    until the redelivery is delivered, and 7 days more have passed."""
    engine = app.state.engine
    sub = await delivering_subscription(client, app, tenant, count=1)
    event_id = (await event_by_key(sub, "item-1"))["id"]
    await set_event(app, event_id, state="delivered", attempts=1, last_status=200,
                    delivered_at=datetime.now(UTC) - timedelta(days=8))
    response = await client.post(f"{sub.path}/events/{event_id}/redeliver", headers=tenant.auth)
    assert response.status_code == 202, response.text
    await _drain(engine)  # every pass, until none changes anything
    row = await event_row(app, event_id)
    assert row["state"] == "pending" and row["body"] is not None


async def test_the_body_sweep_reads_only_the_rows_it_clears(app, is_postgres):
    """The partial index holds only delivered events that still have a body; the sweep's query
    names its predicate literally, so both databases use it rather than scan the table."""
    sql = (
        "SELECT id FROM trigger_events WHERE trigger_events.state = 'delivered' AND trigger_events.body IS NOT NULL"
        " AND trigger_events.delivered_at < '2026-01-01' LIMIT 10"
    )
    async with app.state.engine.connect() as conn:
        if is_postgres:
            await conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            plan = "\n".join(r[0] for r in (await conn.exec_driver_sql("EXPLAIN " + sql)).all())
        else:
            plan = "\n".join(str(r[-1]) for r in (await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)).all())
    assert "ix_trigger_events_delivered_body" in plan, plan
