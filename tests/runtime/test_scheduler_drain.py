"""The scheduler in-process, on a database of its own (both dialects): a poll that outlasts the
drain has its lease given back, and a database outage never ends the loop."""

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from runtime_support import IDS_TRIGGER, lease_held, poll_runs, until
from sqlalchemy import text

from odeus_triggers.db.migrate import upgrade_to_head
from odeus_triggers.runtime.metrics import PollMetrics
from odeus_triggers.runtime.scheduler import DRAIN_MARGIN_S, STOP_RESERVE_S, Scheduler
from odeus_triggers.sandbox import SandboxPool
from odeus_triggers.sandbox.limits import sandbox_limits
from odeus_triggers.subscriptions.poll import PollDeps

from support.helpers import admin_execute, client_of, make_tenant, started_app
from support.subscriptions import create_trigger, subscribe

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
SLOW = {"name": "Slow", "pollingCode": "await new Promise(r => setTimeout(r, 8000)); return [{id: 1}];"}


@pytest.fixture
async def own_app(settings, tmp_path: Path) -> AsyncIterator[Any]:
    """An app on an empty database of its own: no other test's subscription is due in it."""
    if TEST_DATABASE_URL:
        from sqlalchemy.engine import make_url

        name = f"odeus_sched_{uuid.uuid4().hex[:10]}"
        await admin_execute(TEST_DATABASE_URL, f'CREATE DATABASE "{name}"')
        url = make_url(TEST_DATABASE_URL).set(database=name).render_as_string(hide_password=False)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'scheduler.db'}"
    own = settings.model_copy(update={"database_url": type(settings.database_url)(url)})
    await upgrade_to_head(own)
    try:
        async with started_app(own) as app:
            yield app
    finally:
        if TEST_DATABASE_URL:
            await admin_execute(TEST_DATABASE_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_stop_gives_back_the_lease_of_a_poll_that_outlasts_the_drain(own_app):
    app = own_app
    tenant = await make_tenant(app)
    async with client_of(app) as client:
        trigger_id = await create_trigger(client, tenant, SLOW)
        sub_id = (await subscribe(client, tenant, trigger_id, inputs={}, intervalSeconds=1))["subscription"]["id"]
    registry = CollectorRegistry()
    async with SandboxPool(sandbox_limits(app.state.settings)) as sandbox:
        deps = PollDeps(engine=app.state.engine, sandbox=sandbox, keyring=app.state.keyring,
                        observer=PollMetrics(registry))
        # A drain shorter than the code's 8 s (the sandbox itself allows 10 s): stop() must give back.
        scheduler = Scheduler(deps, concurrency=2, wall_time_s=0.5)
        scheduler.start()
        await until(lambda: lease_held(app.state.engine, sub_id), 20, "a poll in flight")
        began = time.monotonic()
        await scheduler.stop()
        took = time.monotonic() - began
    # The whole stop fits in the wall time plus the margin: the reserve is for the give-back.
    assert 0.5 + DRAIN_MARGIN_S - STOP_RESERVE_S - 0.5 <= took <= 0.5 + DRAIN_MARGIN_S + 0.5
    assert scheduler.in_flight == 0
    assert await poll_runs(app.state.engine, sub_id) == []  # cut off: nothing written, nothing counted
    async with app.state.engine.connect() as conn:
        row = (await conn.execute(text("SELECT lease_expires_at, next_poll_at, last_polled_at FROM subscriptions"))).one()
    assert row.lease_expires_at is None and row.last_polled_at is None
    # Due at once for any worker, not after the 30 s lease.
    async with app.state.engine.connect() as conn:
        due = await conn.scalar(text("SELECT count(*) FROM subscriptions WHERE next_poll_at <= :now"),
                                {"now": _now_plus(2)})
    assert due == 1
    assert registry.get_sample_value("odeus_polls_total", {"outcome": "seeded"}) is None


def _now_plus(seconds: float) -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) + timedelta(seconds=seconds)


async def test_the_loop_polls_every_due_subscription_in_batches_and_counts_them(own_app):
    app = own_app
    tenant = await make_tenant(app)
    async with client_of(app) as client:
        trigger_id = await create_trigger(client, tenant, IDS_TRIGGER)
        subs = [(await subscribe(client, tenant, trigger_id, inputs={"ids": "a,b"}))["subscription"]["id"]
                for _ in range(5)]
    registry = CollectorRegistry()
    async with SandboxPool(sandbox_limits(app.state.settings)) as sandbox:
        deps = PollDeps(engine=app.state.engine, sandbox=sandbox, keyring=app.state.keyring,
                        observer=PollMetrics(registry))
        scheduler = Scheduler(deps, concurrency=2, wall_time_s=app.state.settings.polling_timeout_seconds)
        scheduler.start()

        async def all_seeded() -> bool:
            outcomes = [[r["outcome"] for r in await poll_runs(app.state.engine, s)] for s in subs]
            return all(o == ["seeded"] for o in outcomes)

        await until(all_seeded, 30, "every subscription seeded once")
        await scheduler.stop()
    assert registry.get_sample_value("odeus_polls_total", {"outcome": "seeded"}) == 5
    assert registry.get_sample_value("odeus_events_total", {"kind": "seeded"}) == 10
    assert registry.get_sample_value("odeus_poll_lag_seconds_count") == 5


async def test_an_outage_slows_the_loop_down_but_never_ends_it(settings, tmp_path: Path, caplog):
    # A database that is not there: every claim fails, and the loop keeps trying until stopped.
    missing = settings.model_copy(update={"database_url": type(settings.database_url)(
        "postgresql+asyncpg://nobody@127.0.0.1:9/none"), "db_connect_timeout_seconds": 0.5})
    from odeus_triggers.db.engine import make_engine

    engine = make_engine(missing, kind="worker")
    try:
        async with SandboxPool(sandbox_limits(settings)) as sandbox:
            deps = PollDeps(engine=engine, sandbox=sandbox, keyring=None)  # type: ignore[arg-type]
            scheduler = Scheduler(deps, concurrency=1, wall_time_s=1)
            task = scheduler.start()
            await asyncio.sleep(2)
            assert not task.done()
            await scheduler.stop()
            assert task.done() and task.exception() is None
    finally:
        await engine.dispose()
    failures = [r for r in caplog.records if "claiming due subscriptions failed" in r.getMessage()]
    assert 2 <= len(failures) <= 6  # backing off: not a hot loop
    assert all("unreachable" in r.getMessage() for r in failures)
