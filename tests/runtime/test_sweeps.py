"""The retention sweeps (RUNTIME.md): poll runs older than 7 days and dedupe keys not seen for 30
days go, a bounded batch at a time; a pending event stays, however old, since it is still owed."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import Table, insert, select

from odeus_triggers.db.runtime_tables import PollRun, TriggerEvent
from odeus_triggers.runtime.sweeper import sweep_once

from support.subscriptions import create_trigger, subscribe

poll_runs = cast(Table, PollRun.__table__)
events = cast(Table, TriggerEvent.__table__)


def _run(subscription_id: uuid.UUID, age: timedelta) -> dict:
    at = datetime.now(UTC) - age
    return {"id": uuid.uuid4(), "subscription_id": subscription_id, "started_at": at, "finished_at": at,
            "outcome": "ok", "returned": 0, "new": 0, "capped": False, "duration_ms": 1.0, "error": None}


def _event(subscription_id: uuid.UUID, key: str, state: str, age: timedelta) -> dict:
    at = datetime.now(UTC) - age
    return {"id": "msg_" + uuid.uuid4().hex, "subscription_id": subscription_id, "event_key": key, "state": state,
            "body": None, "first_seen_at": at, "last_seen_at": at, "attempts": 0, "lease_epoch": 0}


async def test_old_runs_and_keys_are_swept_in_bounded_batches(app, client, tenant):
    trigger_id = await create_trigger(client, tenant)
    sub = uuid.UUID((await subscribe(client, tenant, trigger_id))["subscription"]["id"])
    old_runs = [_run(sub, timedelta(days=8)) for _ in range(3)]
    async with app.state.engine.begin() as conn:
        await conn.execute(insert(poll_runs), [*old_runs, _run(sub, timedelta(days=6))])
        await conn.execute(insert(events), [
            _event(sub, "old-seeded", "seeded", timedelta(days=31)),
            _event(sub, "old-delivered", "delivered", timedelta(days=31)),
            _event(sub, "old-pending", "pending", timedelta(days=31)),
            _event(sub, "recent", "seeded", timedelta(days=29)),
        ])

    async def one_pass() -> dict[str, int]:
        done = await sweep_once(app.state.engine, batch=2)
        return {k: done[k] for k in ("poll_runs", "trigger_events")}  # test_retention.py has the others

    assert await one_pass() == {"poll_runs": 2, "trigger_events": 2}
    assert await one_pass() == {"poll_runs": 1, "trigger_events": 0}
    assert await one_pass() == {"poll_runs": 0, "trigger_events": 0}

    async with app.state.engine.connect() as conn:
        runs = (await conn.execute(select(poll_runs.c.id).where(poll_runs.c.subscription_id == sub))).scalars().all()
        keys = (await conn.execute(select(events.c.event_key).where(events.c.subscription_id == sub))).scalars().all()
    assert len(runs) == 1
    assert sorted(keys) == ["old-pending", "recent"]
