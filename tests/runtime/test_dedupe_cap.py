"""The per-subscription cap on dedupe keys (RUNTIME.md, "Polling" > Dedupe): beyond the newest
`ODEUS_DEDUPE_MAX_KEYS`, the oldest keys go, a bounded batch per pass, never a pending event's;
an event whose key went is new again. Each test has a database of its own, since a pass walks
every subscription."""

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from pydantic import ValidationError
from sqlalchemy import Table, insert, select

from odeus_triggers.config import Settings
from odeus_triggers.db.runtime_tables import TriggerEvent
from odeus_triggers.runtime.key_cap import cap_keys_once
from odeus_triggers.runtime.sweeper import Sweeper

from support.fresh_app import fresh_app
from support.helpers import make_tenant
from support.polls import Polled, counter_subscription, states

events = cast(Table, TriggerEvent.__table__)
CAP = 3
# One instant for every row, so that rows of the same age tie exactly, as the keys of one poll do.
NOW = datetime.now(UTC)


def _event(subscription_id: uuid.UUID, key: str, state: str, days_ago: int) -> dict[str, Any]:
    at = NOW - timedelta(days=days_ago)
    return {"id": "msg_" + uuid.uuid4().hex, "subscription_id": subscription_id, "event_key": key, "state": state,
            "body": None, "first_seen_at": at, "last_seen_at": at, "attempts": 1, "lease_epoch": 0}


async def _seeded(client: Any, app: Any, keys: list[tuple[str, str]], same_age: bool = False) -> Polled:
    """A subscription past its seeding poll, holding `keys` (key, state), the first the oldest."""
    sub = await counter_subscription(client, app, await make_tenant(app), inputs={"count": 0})
    assert (await sub.poll())["outcome"] == "seeded"
    rows = [_event(uuid.UUID(sub.id), key, state, days_ago=1 if same_age else len(keys) - i)
            for i, (key, state) in enumerate(keys)]
    async with app.state.engine.begin() as conn:
        await conn.execute(insert(events), rows)
    return sub


async def _ids(app: Any, sub: Polled) -> dict[str, str]:
    async with app.state.engine.connect() as conn:
        rows = (await conn.execute(select(events.c.event_key, events.c.id)
                                   .where(events.c.subscription_id == uuid.UUID(sub.id)))).all()
    return dict(rows)


async def test_the_oldest_non_pending_keys_beyond_the_cap_go_a_batch_at_a_time(tmp_path):
    async with fresh_app(tmp_path) as (app, client):
        over = await _seeded(client, app, [("item-1", "delivered"), ("item-2", "pending"), ("item-3", "seeded"),
                                           ("item-4", "failed"), ("item-5", "cancelled"), ("item-6", "delivered")])
        at_cap = await _seeded(client, app, [("old-1", "delivered"), ("old-2", "seeded"), ("old-3", "failed")])
        before = await _ids(app, over)

        # One row per pass: the oldest first, and the walk stays on the subscription until it is done.
        first = await cap_keys_once(app.state.engine, CAP, batch=1)
        assert first.deleted == 1
        assert set(await _ids(app, over)) == {"item-2", "item-3", "item-4", "item-5", "item-6"}
        second = await cap_keys_once(app.state.engine, CAP, after=first.cursor, batch=1)
        assert second.deleted == 1
        third = await cap_keys_once(app.state.engine, CAP, after=second.cursor, batch=1)
        assert (third.deleted, third.cursor) == (0, None)

        # The newest three stay, and so does the pending one beyond them, which is still owed.
        assert states(await over.events()) == {"item-2": "pending", "item-4": "failed", "item-5": "cancelled",
                                               "item-6": "delivered"}
        assert set(await _ids(app, at_cap)) == {"old-1", "old-2", "old-3"}
        assert (await cap_keys_once(app.state.engine, CAP)).deleted == 0

        # Seen again, a dropped key is a new event with a new webhook-id; a kept one is not.
        await over.set_count(4)
        polled = await over.poll()
        assert (polled["outcome"], polled["returned"], polled["new"]) == ("ok", 4, 2)
        assert {k: s for k, s in states(await over.events()).items() if k in ("item-1", "item-3")} == {
            "item-1": "pending", "item-3": "pending"}
        after = await _ids(app, over)
        assert after["item-1"] != before["item-1"] and after["item-2"] == before["item-2"]


async def test_keys_of_one_poll_share_a_timestamp_and_the_cap_still_holds_exactly(tmp_path):
    async with fresh_app(tmp_path) as (app, client):
        sub = await _seeded(client, app, [(f"same-{i}", "seeded") for i in range(CAP + 2)], same_age=True)
        ids = await _ids(app, sub)

        assert (await cap_keys_once(app.state.engine, CAP, batch=1)).deleted == 1
        assert (await cap_keys_once(app.state.engine, CAP)).deleted == 1
        assert (await cap_keys_once(app.state.engine, CAP)).deleted == 0
        kept = sorted(ids.values())[-CAP:]  # the id breaks the tie: the lowest go first
        assert sorted((await _ids(app, sub)).values()) == kept


async def test_the_workers_sweeper_applies_the_cap(tmp_path):
    async with fresh_app(tmp_path) as (app, client):
        sub = await _seeded(client, app, [(f"k{i}", "delivered") for i in range(CAP + 2)])
        sweeper = Sweeper(app.state.engine, max_keys=CAP)
        task = asyncio.create_task(sweeper.run())
        try:
            deadline = time.monotonic() + 10
            while len(await _ids(app, sub)) > CAP and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            sweeper.stop()
            await task
        assert set(await _ids(app, sub)) == {"k2", "k3", "k4"}


async def test_a_pass_looks_at_a_bounded_number_of_subscriptions(tmp_path):
    async with fresh_app(tmp_path) as (app, client):
        subs = [await _seeded(client, app, [(f"k{i}", "delivered") for i in range(CAP + 1)]) for _ in range(3)]
        in_walk_order = sorted(uuid.UUID(s.id) for s in subs)
        engine = app.state.engine

        budgeted = await cap_keys_once(engine, CAP, scan_budget=1)
        assert (budgeted.deleted, budgeted.cursor) == (1, in_walk_order[0])
        two = await cap_keys_once(engine, CAP, after=budgeted.cursor, per_pass=2)
        assert (two.deleted, two.cursor) == (2, in_walk_order[2])
        wrapped = await cap_keys_once(engine, CAP, after=two.cursor, per_pass=2)
        assert (wrapped.deleted, wrapped.cursor) == (0, None)
        assert (await cap_keys_once(engine, CAP, per_pass=2)).deleted == 0
        for sub in subs:
            assert set(await _ids(app, sub)) == {"k1", "k2", "k3"}


def test_the_cap_is_a_setting_of_at_least_one(monkeypatch):
    monkeypatch.delenv("ODEUS_DEDUPE_MAX_KEYS", raising=False)
    assert Settings().dedupe_max_keys == 100_000
    monkeypatch.setenv("ODEUS_DEDUPE_MAX_KEYS", "5")
    assert Settings().dedupe_max_keys == 5
    monkeypatch.setenv("ODEUS_DEDUPE_MAX_KEYS", "0")
    with pytest.raises(ValidationError):
        Settings()
