"""Two `odeus-triggers worker` processes share 1,000 subscriptions on one Postgres: every one is
polled, both workers take part, and no subscription is ever polled by both at once (RUNTIME.md,
"Scheduling": one claim with FOR UPDATE SKIP LOCKED, a lease, and a fence on `lease_epoch`)."""

import asyncio
import time
from pathlib import Path

import pytest
from runtime_support import tail, worker_process

from support.runtime import (
    pause_workspace,
    polls_total,
    require_postgres,
    subscribe_many,
    subscription_rows,
    worker_env,
    workspace_runs,
)
from support.subscriptions import create_trigger

SUBSCRIPTIONS = 1000
# Long enough for every subscription to come round several times at intervalSeconds 1.
RUN_S = 30.0
ALL_POLLED_WITHIN_S = 60.0
# Below the sandbox's queue per workspace (16): all 1,000 are one workspace's, and a worker that
# claims more than it can queue turns the excess away for 15 s (reported with the test).
CONCURRENCY = "12"
WALL_S = 5.0

EMPTY_TRIGGER = {"name": "Empty Lister", "pollingCode": "return [];"}


@pytest.fixture(autouse=True)
async def _postgres_only(is_postgres: bool, app, tenant):
    require_postgres(is_postgres)
    yield
    await pause_workspace(app.state.engine, tenant.workspace_id)


async def test_two_workers_share_1000_subscriptions_and_never_poll_one_twice_at_once(
    app, client, tenant, database_url: str, tmp_path: Path, capsys
):
    engine = app.state.engine
    trigger_id = await create_trigger(client, tenant, EMPTY_TRIGGER)
    began = time.monotonic()
    ids = await subscribe_many(client, tenant, trigger_id, SUBSCRIPTIONS)
    created_s = time.monotonic() - began
    assert len(set(ids)) == SUBSCRIPTIONS

    env = worker_env(database_url, ODEUS_POLLING_TIMEOUT_SECONDS=str(WALL_S))
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    with worker_process(env, logs[0], "--concurrency", CONCURRENCY) as a, \
            worker_process(env, logs[1], "--concurrency", CONCURRENCY) as b:
        started = time.monotonic()

        async def polled_subscriptions() -> int:
            return len({r["subscription_id"] for r in await workspace_runs(engine, tenant.workspace_id)})

        while (count := await polled_subscriptions()) < SUBSCRIPTIONS or time.monotonic() - started < RUN_S:
            if time.monotonic() - started > ALL_POLLED_WITHIN_S:
                pytest.fail(f"{SUBSCRIPTIONS - count} of {SUBSCRIPTIONS} subscriptions not polled within "
                            f"{ALL_POLLED_WITHIN_S:.0f} s\n{tail(logs[0])}\n{tail(logs[1])}")
            assert a.process.poll() is None and b.process.poll() is None, f"{tail(logs[0])}\n{tail(logs[1])}"
            await asyncio.sleep(0.5)
        ran_s = time.monotonic() - started
        per_worker = [polls_total(w.get("/metrics").text) for w in (a, b)]
        # Both together, so that neither polls alone while the other drains.
        for w in (a, b):
            w.process.terminate()
        codes = [w.process.wait(timeout=WALL_S + 5 + 5) for w in (a, b)]
    assert codes == [0, 0], f"{tail(logs[0])}\n{tail(logs[1])}"

    runs = await workspace_runs(engine, tenant.workspace_id)
    by_subscription: dict[str, list[dict]] = {}
    for run in runs:
        by_subscription.setdefault(str(run["subscription_id"]), []).append(run)
    assert set(by_subscription) == set(ids), "every subscription was polled at least once"

    # A subscription's runs, by start: each starts after the previous one of it finished. The
    # times are the database's: started_at is the claim's now(), finished_at adds the poll's
    # duration, so a second claim while a poll was in flight would start before that finish.
    overlaps = [(sub, prev["started_at"], prev["finished_at"], run["started_at"])
                for sub, its in by_subscription.items() for prev, run in zip(its, its[1:], strict=False)
                if run["started_at"] < prev["finished_at"]]
    assert overlaps == [], f"{len(overlaps)} overlapping polls, e.g. {overlaps[:3]}"
    outcomes: dict[str, int] = {}
    for run in runs:
        outcomes[run["outcome"]] = outcomes.get(run["outcome"], 0) + 1
    # A lease (wall time + 30 s) outlasts every poll here, so no fence ever trips.
    assert "lease_lost" not in outcomes, outcomes
    assert set(outcomes) <= {"seeded", "ok"}, outcomes
    assert outcomes["seeded"] == SUBSCRIPTIONS, "each seeded once, by one worker"

    # Both took part. A counter holds the polls its worker finished before the scrape (of these and
    # of any other test's subscription still active in the shared database), not those of its drain.
    assert all(n > 0 for n in per_worker), per_worker

    # Nothing was left leased: both drained, and what was due stayed due.
    rows = await subscription_rows(engine, tenant.workspace_id)
    assert [i for i, r in rows.items() if r["lease_expires_at"] is not None] == []
    # Every claim bumps lease_epoch once, and ends in one recorded run, or one the sandbox turned
    # away (logged, nothing run), or goes back unrun: all 1,000 are one workspace's, and a claim
    # that brings more of it than its share of a worker gives the rest back (due again at once).
    turned_away = sum(tail(log, 10**7).count("the sandbox could not take a poll") for log in logs)
    claims = sum(r["lease_epoch"] for r in rows.values())
    assert claims >= len(runs) + turned_away, (claims, len(runs), turned_away)
    given_back = claims - len(runs) - turned_away
    polls = sorted(len(v) for v in by_subscription.values())
    with capsys.disabled():
        print(f"\n[workers share] {SUBSCRIPTIONS} subscriptions created through the API in {created_s:.1f} s "
              f"({SUBSCRIPTIONS // 50} batches of 50 concurrent requests)")
        print(f"[workers share] ran {ran_s:.1f} s; polls per worker (odeus_polls_total): a={per_worker[0]} "
              f"b={per_worker[1]}; poll runs of these subscriptions: {len(runs)} ({len(runs) / ran_s:.0f}/s); "
              f"outcomes {outcomes}")
        print(f"[workers share] runs per subscription: min {polls[0]}, median {polls[len(polls) // 2]}, "
              f"max {polls[-1]}; overlapping: 0; claims {claims}; polls the sandbox turned away: {turned_away}; "
              f"claims given back over the workspace's share: {given_back}")
