"""A worker that dies mid-poll, and one that is asked to stop (RUNTIME.md, "Scheduling" and
"Processes"): after `kill -9`, its subscriptions come due again when their leases run out, with
nothing lost; after SIGTERM, it drains within the wall time plus 5 s and exits 0, and what it held
is due again at once, for any worker."""

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from runtime_support import tail, until, worker_process

from support.helpers import make_tenant
from support.runtime import (
    events_of,
    pause_all_but,
    pause_workspace,
    require_postgres,
    subscribe_many,
    subscription_rows,
    worker_env,
    workspace_runs,
)
from support.subscriptions import create_trigger, subscription_path

# The sandbox's wall time: the lease is this plus 30 s (35 s), the drain this plus 5 s.
WALL_S = 5.0
LEASE_S = WALL_S + 30.0
DRAIN_S = WALL_S + 5.0
SLOW_MS = 4000
SUBSCRIPTIONS = 3
# One slot more than the subscriptions: a workspace never holds every slot of a worker.
CONCURRENCY = SUBSCRIPTIONS + 1

# Slow enough to be caught in flight; the ids come from the inputs, so the test decides when a
# new one appears upstream.
SLOW_TRIGGER: dict[str, Any] = {
    "name": "Slow Id Lister",
    "inputFields": [{"label": "Ids", "type": "TEXT", "required": True}],
    "pollingCode": f"await new Promise(r => setTimeout(r, {SLOW_MS}));\n"
                   "return inputs.ids.split(',').map(id => ({id}));",
}


@pytest.fixture(autouse=True)
async def _postgres_only(is_postgres: bool, app, tenant):
    require_postgres(is_postgres)
    yield
    await pause_workspace(app.state.engine, tenant.workspace_id)


def _env(database_url: str) -> dict[str, str]:
    # One sandbox run per subscription at once: all of them are in flight together, none queued.
    return worker_env(database_url, ODEUS_POLLING_TIMEOUT_SECONDS=str(WALL_S),
                      ODEUS_POLLING_WORKERS=str(SUBSCRIPTIONS),
                      ODEUS_POLLING_MAX_RUNS_PER_WORKSPACE=str(SUBSCRIPTIONS))


def _runs_by_subscription(runs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for run in runs:
        out.setdefault(str(run["subscription_id"]), []).append(run)
    return out


async def _all_in_flight(engine: Any, workspace_id: Any, after_epoch: dict[str, int] | None = None):
    """The rows, once every subscription is leased (and, with `after_epoch`, by a claim made after
    those epochs), else None."""
    rows = await subscription_rows(engine, workspace_id)
    for sub_id, row in rows.items():
        if row["lease_expires_at"] is None or row["lease_expires_at"] <= row["db_now"]:
            return None
        if after_epoch is not None and row["lease_epoch"] <= after_epoch[sub_id]:
            return None
    return rows


async def test_kill_9_mid_poll_its_subscriptions_are_polled_again_after_the_lease_and_nothing_is_lost(
    app, client, tenant, database_url: str, tmp_path: Path, capsys
):
    engine, ws = app.state.engine, tenant.workspace_id
    trigger_id = await create_trigger(client, tenant, SLOW_TRIGGER)
    ids = await subscribe_many(client, tenant, trigger_id, SUBSCRIPTIONS, inputs={"ids": "a,b"})
    env = _env(database_url)
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"

    with worker_process(env, first_log, "--concurrency", str(CONCURRENCY)) as first:
        async def all_seeded() -> bool:
            runs = _runs_by_subscription(await workspace_runs(engine, ws))
            return set(runs) == set(ids) and all(r[0]["outcome"] == "seeded" for r in runs.values())

        await until(all_seeded, 30, "the seeding polls", first_log)

        # A new item appears upstream of every subscription.
        for sub_id in ids:
            patched = await client.patch(subscription_path("", tenant.integration_id, trigger_id, sub_id),
                                         json={"inputs": {"ids": "a,b,c"}}, headers=tenant.auth)
            assert patched.status_code == 200, patched.text
        epochs = {i: r["lease_epoch"] for i, r in (await subscription_rows(engine, ws)).items()}

        # Claimed after the change, so these polls would find "c"; then the worker dies mid-poll.
        held = await until(lambda: _all_in_flight(engine, ws, epochs), 30, "polls in flight after the change",
                           first_log)
        before = await workspace_runs(engine, ws)
        first.process.kill()
        assert first.process.wait(timeout=10) == -9
        killed_at = time.monotonic()

    seeded = sorted((i, k, "seeded") for i in ids for k in ("a", "b"))
    # The killed polls wrote nothing: no run, no event, and the leases still stand.
    assert await workspace_runs(engine, ws) == before
    assert sorted(await events_of(engine, ws)) == seeded
    leases = {i: r["lease_expires_at"] for i, r in held.items()}
    assert all(r["lease_expires_at"] == leases[i] for i, r in (await subscription_rows(engine, ws)).items())

    with worker_process(env, second_log, "--concurrency", str(CONCURRENCY)) as second:
        async def all_polled_again() -> bool:
            runs = _runs_by_subscription(await workspace_runs(engine, ws))
            return all(len(runs.get(i, [])) > len(_runs_by_subscription(before)[i]) for i in ids)

        await until(all_polled_again, LEASE_S + WALL_S + 15, "polls after the leases ran out", second_log)
        waited_s = time.monotonic() - killed_at
        code, _ = second.terminate(DRAIN_S + 5)
    assert code == 0, tail(second_log)

    runs = _runs_by_subscription(await workspace_runs(engine, ws))
    for sub_id in ids:
        again = runs[sub_id][len(_runs_by_subscription(before)[sub_id])]
        # Not a moment before the dead worker's lease ran out: nothing but the lease frees it.
        assert again["started_at"] >= leases[sub_id], (again, leases[sub_id])
        assert again["started_at"] <= leases[sub_id] + timedelta(seconds=10), (again, leases[sub_id])
        assert again["outcome"] == "ok" and again["new"] == 1, again
    assert all(r["outcome"] != "lease_lost" for its in runs.values() for r in its)
    # The item that appeared while the first worker polled is there once, pending delivery.
    assert sorted(await events_of(engine, ws)) == sorted(seeded + [(i, "c", "pending") for i in ids])

    with capsys.disabled():
        print(f"\n[kill -9] {SUBSCRIPTIONS} polls killed in flight; lease {LEASE_S:.0f} s; polled again "
              f"{waited_s:.1f} s after the kill, each at or after its lease's end")


# The drain test's polls: the wall time is long next to the drain's 5 s margin, so that one poll
# runs while a second waits for the only sandbox worker, and that second one cannot finish within
# the drain (9 s waiting + 9 s running > 10 + 5 s): its lease is given back, not waited out.
DRAIN_WALL_S = 10.0
DRAIN_LIMIT_S = DRAIN_WALL_S + 5.0
DRAIN_SLEEP_MS = 9000


async def test_sigterm_drains_within_the_wall_time_plus_5_s_and_another_worker_polls_at_once(
    app, client, tenant, database_url: str, tmp_path: Path, capsys
):
    # Two workspaces, one subscription each: one workspace may not hold both of the worker's slots,
    # and with one sandbox worker, one poll runs while the other waits for it.
    other = await make_tenant(app)
    engine, spaces = app.state.engine, (tenant.workspace_id, other.workspace_id)
    # The worker's two slots are the test's: nothing another test left due may take one.
    await pause_all_but(engine, *spaces)
    slow = {**SLOW_TRIGGER, "pollingCode": SLOW_TRIGGER["pollingCode"].replace(str(SLOW_MS), str(DRAIN_SLEEP_MS))}
    ids = []
    for owner in (tenant, other):
        ids += await subscribe_many(client, owner, await create_trigger(client, owner, slow), 1, inputs={"ids": "a"})

    async def runs_of_both() -> list[dict]:
        return [r for ws in spaces for r in await workspace_runs(engine, ws)]

    async def rows_of_both() -> dict[str, dict]:
        return {k: v for ws in spaces for k, v in (await subscription_rows(engine, ws)).items()}

    async def both_in_flight() -> dict[str, dict] | None:
        held = [await _all_in_flight(engine, ws) for ws in spaces]
        return {k: v for h in held for k, v in h.items()} if all(held) else None  # type: ignore[union-attr]

    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    one_sandbox = worker_env(database_url, ODEUS_POLLING_TIMEOUT_SECONDS=str(DRAIN_WALL_S),
                             ODEUS_POLLING_WORKERS="1", ODEUS_POLLING_MAX_RUNS_PER_WORKSPACE="1")
    try:
        with worker_process(one_sandbox, first_log, "--concurrency", "2") as first:
            held = await until(both_in_flight, 30, "polls in flight", first_log)
            assert await runs_of_both() == []  # both still running or waiting for the sandbox
            code, took = first.terminate(DRAIN_LIMIT_S + 10)
        assert code == 0, tail(first_log)
        # The margin is the process's own exit (closing the sandbox pool and the engine).
        assert took <= DRAIN_LIMIT_S + 1, f"{took:.1f} s\n{tail(first_log)}"

        # The poll in the sandbox finished and was written; the one behind it had its lease given
        # back. Neither is left leased, and neither waits for its lease to run out.
        rows = await rows_of_both()
        assert all(r["lease_expires_at"] is None for r in rows.values()), rows
        drained = _runs_by_subscription(await runs_of_both())
        assert [r["outcome"] for its in drained.values() for r in its] == ["seeded"], drained
        (given_back,) = set(ids) - set(drained)
        assert rows[given_back]["next_poll_at"] <= rows[given_back]["db_now"], rows[given_back]

        # Another worker, with room for both at once, polls them again at once.
        with worker_process(worker_env(database_url, ODEUS_POLLING_TIMEOUT_SECONDS=str(DRAIN_WALL_S),
                                       ODEUS_POLLING_WORKERS="2", ODEUS_POLLING_MAX_RUNS_PER_WORKSPACE="2"),
                            second_log, "--concurrency", "2") as second:
            started = time.monotonic()

            async def all_polled_by_second() -> bool:
                runs = _runs_by_subscription(await runs_of_both())
                return all(len(runs.get(i, [])) > len(drained.get(i, [])) for i in ids)

            await until(all_polled_by_second, DRAIN_WALL_S + 10, "polls by the second worker", second_log)
            waited_s = time.monotonic() - started
            code, _ = second.terminate(DRAIN_LIMIT_S + 10)
        assert code == 0, tail(second_log)

        runs = _runs_by_subscription(await runs_of_both())
        for sub_id in ids:
            again = runs[sub_id][len(drained.get(sub_id, []))]
            # Well before the first worker's lease (wall time + 30 s) would have run out.
            assert again["started_at"] < held[sub_id]["lease_expires_at"] - timedelta(seconds=15), again
        assert runs[given_back][0]["outcome"] == "seeded", runs[given_back]
        # Seeded exactly once, whichever worker did it.
        seeded = [e for ws in spaces for e in await events_of(engine, ws)]
        assert sorted(seeded) == sorted((i, "a", "seeded") for i in ids)
    finally:
        await pause_workspace(engine, other.workspace_id)

    with capsys.disabled():
        print(f"\n[SIGTERM] 2 polls in flight (one running, one waiting for the sandbox): exited 0 in {took:.1f} s "
              f"(limit {DRAIN_LIMIT_S:.0f} s), one finished, one lease given back; the second worker polled both "
              f"within {waited_s:.1f} s")
