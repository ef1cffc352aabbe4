"""A worker whose Postgres goes down and comes back (RUNTIME.md, "Processes"): it keeps running,
answers /healthz, and polls again on its own once the database is back, with nothing lost. The
test brings its own Postgres cluster and stops it, so it never touches the shared server."""

import asyncio
import time
from pathlib import Path

import pytest
from runtime_support import IDS_TRIGGER, poll_runs, stored_events, until, worker_process

from odeus_triggers.db.migrate import upgrade_to_head

from support.fresh_app import serving, settings_for
from support.helpers import make_tenant
from support.runtime import WEBHOOK, worker_env
from support.subscriptions import create_trigger, subscriptions_path
from support.throwaway_postgres import running_cluster

DOWN_S = 6.0
RECOVERY_WITHIN_S = 30.0


@pytest.fixture
def cluster(is_postgres: bool):
    # The worker runs on Postgres only; SQLite runs the scheduler inside the API.
    if not is_postgres:
        pytest.skip("Postgres only (TEST_DATABASE_URL)")
    with running_cluster() as running:
        yield running


async def test_a_worker_rides_out_a_database_restart_and_polls_again_by_itself(cluster, tmp_path: Path):
    settings = settings_for(cluster.url)
    await upgrade_to_head(settings)
    async with serving(settings) as (app, client):
        tenant = await make_tenant(app)
        trigger_id = await create_trigger(client, tenant, IDS_TRIGGER)
        created = await client.post(subscriptions_path("", tenant.integration_id, trigger_id), headers=tenant.auth,
                                    json={"inputs": {"ids": "a"}, "webhookUrl": WEBHOOK, "intervalSeconds": 1})
        assert created.status_code == 201, created.text
        sub = created.json()["subscription"]
        engine = app.state.engine
        log = tmp_path / "worker.log"
        with worker_process(worker_env(cluster.url), log, "--concurrency", "4") as worker:
            await until(lambda: _ok_runs(engine, sub["id"], 2), 30, "two polls before the outage", log)

            await asyncio.to_thread(cluster.stop, "immediate")
            await asyncio.sleep(DOWN_S)
            assert worker.process.poll() is None, "the worker exited during the outage"
            assert worker.get("/healthz").status_code == 200
            await asyncio.to_thread(cluster.start)
            back = time.monotonic()

            # A new item upstream after the restart: the worker finds it and records it once.
            patched = await client.patch(f"{subscriptions_path('', tenant.integration_id, trigger_id)}/{sub['id']}",
                                         json={"inputs": {"ids": "a,b"}}, headers=tenant.auth)
            assert patched.status_code == 200, patched.text
            await until(lambda: _has_event(engine, sub["id"], "b"), RECOVERY_WITHIN_S, "a poll after the restart", log)
            recovered = time.monotonic() - back
            assert worker.process.poll() is None

        assert await stored_events(engine, sub["id"]) == [("a", "seeded"), ("b", "pending")]
        outcomes = {r["outcome"] for r in await poll_runs(engine, sub["id"])}
        assert outcomes <= {"seeded", "ok"}, outcomes
        print(f"\n[worker outage] Postgres down {DOWN_S:.0f} s; the worker polled again {recovered:.1f} s after it "
              "came back, without a restart")


async def _ok_runs(engine, subscription_id: str, count: int) -> bool:
    return sum(r["outcome"] == "ok" for r in await poll_runs(engine, subscription_id)) >= count


async def _has_event(engine, subscription_id: str, key: str) -> bool:
    try:
        return (key, "pending") in await stored_events(engine, subscription_id)
    except Exception:  # the test's own pool may still hold connections from before the restart
        return False
