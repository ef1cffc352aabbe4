"""`odeus-triggers worker` as an operator runs it: a real process on the test Postgres, polling the
subscriptions that the API creates, and draining on SIGTERM (RUNTIME.md, "Polling", "Processes")."""

import os
import re
from pathlib import Path

import pytest
from runtime_support import (
    IDS_TRIGGER,
    lease_held,
    pause_all,
    poll_runs,
    process_env,
    stored_events,
    until,
    worker_process,
)

from support.subscriptions import create_trigger, subscribe, subscription_path

pytestmark = pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL"),
    reason="Postgres only (TEST_DATABASE_URL): workers share one Postgres; on SQLite the API embeds the scheduler",
)



@pytest.fixture(autouse=True)
async def _paused_afterwards(app, tenant):
    yield
    await pause_all(app.state.engine, tenant.workspace_id)


# The sandbox's wall time in these tests, and the drain the contract allows beyond it.
WALL_S = 6.0
DRAIN_MARGIN_S = 5.0


def _env(settings) -> dict[str, str]:
    return process_env(settings.database_url.get_secret_value(), ODEUS_POLLING_TIMEOUT_SECONDS=str(WALL_S))


async def _subscription(client, tenant, body: dict, inputs: dict) -> tuple[str, str]:
    trigger_id = await create_trigger(client, tenant, body)
    created = await subscribe(client, tenant, trigger_id, inputs=inputs, intervalSeconds=1)
    return trigger_id, created["subscription"]["id"]


def _counter(metrics: str, outcome: str) -> float:
    match = re.search(rf'^odeus_polls_total{{outcome="{outcome}"}} (\S+)$', metrics, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_a_worker_seeds_then_writes_each_new_event_to_the_outbox_once(app, client, tenant, settings, tmp_path: Path):
    engine = app.state.engine
    trigger_id, sub_id = await _subscription(client, tenant, IDS_TRIGGER, {"ids": "1,2"})
    log = tmp_path / "worker.log"
    with worker_process(_env(settings), log, "--concurrency", "4") as worker:
        runs = await until(lambda: poll_runs(engine, sub_id), 30, "the first poll", log)
        assert runs[0]["outcome"] == "seeded" and runs[0]["returned"] == 2 and runs[0]["new"] == 0
        assert await stored_events(engine, sub_id) == [("1", "seeded"), ("2", "seeded")]

        # Ids 3 and 4 appear upstream: the next polls find them, once.
        patched = await client.patch(subscription_path("", tenant.integration_id, trigger_id, sub_id),
                                     json={"inputs": {"ids": "1,2,3,4"}}, headers=tenant.auth)
        assert patched.status_code == 200, patched.text

        async def found_new() -> bool:
            return sum(r["new"] for r in await poll_runs(engine, sub_id)) >= 2

        await until(found_new, 30, "the new events", log)
        polled = len(await poll_runs(engine, sub_id))

        async def polled_twice_more() -> bool:
            return len(await poll_runs(engine, sub_id)) >= polled + 2

        await until(polled_twice_more, 30, "two more polls", log)
        runs = await poll_runs(engine, sub_id)
        assert [r["outcome"] for r in runs].count("seeded") == 1
        assert {r["outcome"] for r in runs[1:]} == {"ok"}, runs
        assert sum(r["new"] for r in runs) == 2
        assert await stored_events(engine, sub_id) == [("1", "seeded"), ("2", "seeded"), ("3", "pending"),
                                                        ("4", "pending")]

        read = await client.get(subscription_path("", tenant.integration_id, trigger_id, sub_id), headers=tenant.auth)
        shown = read.json()["subscription"]
        assert read.status_code == 200 and shown["lastPolledAt"] and shown["consecutiveFailures"] == 0

        metrics = worker.get("/metrics")
        assert metrics.status_code == 200
        assert _counter(metrics.text, "seeded") >= 1 and _counter(metrics.text, "ok") >= 3, metrics.text
        assert "odeus_poll_lag_seconds_count" in metrics.text and 'odeus_events_total{kind="new"}' in metrics.text
        assert worker.get("/healthz").json() == {"status": "ok"}
        code, _ = worker.terminate(WALL_S + DRAIN_MARGIN_S + 5)
    assert code == 0, log.read_text()[-3000:]


SLOW_TRIGGER = {
    "name": "Slow Lister",
    "pollingCode": "await new Promise(r => setTimeout(r, 3000)); return [{id: 1}, {id: 2}];",
}


async def test_sigterm_finishes_the_poll_in_flight_and_exits_0(app, client, tenant, settings, tmp_path: Path):
    engine = app.state.engine
    _, sub_id = await _subscription(client, tenant, SLOW_TRIGGER, {})
    log = tmp_path / "worker.log"
    with worker_process(_env(settings), log) as worker:
        await until(lambda: lease_held(engine, sub_id), 30, "a poll in flight", log)
        assert await poll_runs(engine, sub_id) == []  # still running: its 3 s have not passed
        code, took = worker.terminate(WALL_S + DRAIN_MARGIN_S + 3)  # + the process's own start-up slack
    assert code == 0, log.read_text()[-3000:]
    assert took <= WALL_S + DRAIN_MARGIN_S + 1
    runs = await poll_runs(engine, sub_id)
    # The poll in flight finished and was written, rather than cut off.
    assert [r["outcome"] for r in runs] == ["seeded"], runs
    assert not await lease_held(engine, sub_id)

    # Another worker polls it again: nothing of the stopped one holds it.
    with worker_process(_env(settings), tmp_path / "second.log") as second:
        async def polled_again() -> bool:
            return len(await poll_runs(engine, sub_id)) >= 2

        await until(polled_again, 30, "a poll by the second worker", second.log)
        code, _ = second.terminate(WALL_S + DRAIN_MARGIN_S + 5)
    assert code == 0
    assert [r["outcome"] for r in await poll_runs(engine, sub_id)][:2] == ["seeded", "ok"]
