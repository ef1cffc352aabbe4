"""The delivery issue's chaos test (RUNTIME.md, "Delivery" and "Processes"): twenty subscriptions
produce new items every second while two real `odeus-triggers worker` processes poll and deliver.
One worker is killed with `kill -9` mid-run, with polls and deliveries in flight, and restarted.
Then production stops and the outbox drains. Every produced item is delivered at least once, and
every duplicate carries the same `webhook-id` as the first; the test prints the counts.

Everything is on loopback (support/chaos_upstream.py): the upstream that the polling code fetches,
and the receiver, which records each POST on arrival and answers 204 after a short delay (so that
deliveries are in flight when the worker dies), and 500 to the first attempt of every tenth item
(so that retries, 5 s later, are part of the run). Nothing is mocked.
"""

import asyncio
import logging
import re
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from runtime_support import tail, worker_process
from sqlalchemy import text
from standardwebhooks.webhooks import Webhook

from support.chaos_upstream import ChaosWorld, alive, descendants
from support.helpers import client_of, make_tenant, started_app
from support.runtime import pause_workspace, polls_total, require_postgres, worker_env
from support.subscriptions import create_trigger, subscriptions_path

SUBSCRIPTIONS = 20
CONCURRENCY = "8"
# The sandbox's wall time: a poll's lease is this plus 30 s, so a killed worker's polls are due
# again 33 s after their claim; a delivery's lease is 15 s + 15 s.
WALL_S = 3.0
POLL_LEASE_S = WALL_S + 30.0
DELIVERY_LEASE_S = 30.0
# After production starts: then at the first moment worker a has a poll and a delivery in flight.
KILL_AT_S = 8.0
CATCH_WITHIN_S = 10.0
ORPHANS_GONE_WITHIN_S = 10.0
# Production runs this long, and at least a few seconds past the kill (with the restarted worker).
PRODUCE_S = 16.0
PRODUCE_AFTER_KILL_S = 4.0
# Past the kill: both leases run out, the reclaimed poll runs, and a first-attempt 500 is retried.
DRAIN_WITHIN_S = 50.0
# A killed worker's live leases are still held this long after the kill; the survivor's are not.
STRANDED_AFTER_S = WALL_S + 2.0

CHAOS_TRIGGER: dict[str, Any] = {
    "name": "Chaos Stream",
    "inputFields": [{"label": "Url", "type": "TEXT", "required": True}],
    "pollingCode": "const r = await fetch(inputs.url);\nreturn await r.json();",
}


def _fails_first(item: dict[str, Any]) -> bool:
    return int(item["n"]) % 10 == 3


@pytest.fixture
def world():
    w = ChaosWorld(SUBSCRIPTIONS, answer_delay_s=0.25, fetch_delay_s=0.2, fail_first=_fails_first).start()
    try:
        yield w
    finally:
        w.stop()


async def _live_leases(engine: Any, ws: uuid.UUID) -> tuple[dict[str, int], dict[str, int]]:
    """(subscription id → lease_epoch) of the polls and (event id → lease_epoch) of the deliveries
    whose lease is live now."""
    async with engine.connect() as conn:
        polls = await conn.execute(text(
            "SELECT id, lease_epoch FROM subscriptions WHERE workspace_id = :ws "
            "AND lease_expires_at > now()"), {"ws": ws})
        deliveries = await conn.execute(text(
            "SELECT e.id, e.lease_epoch FROM trigger_events e JOIN subscriptions s ON s.id = e.subscription_id "
            "WHERE s.workspace_id = :ws AND e.state = 'pending' AND e.lease_expires_at > now()"), {"ws": ws})
        return {str(i): n for i, n in polls}, {str(i): n for i, n in deliveries}


async def _still_stranded(engine: Any, polls: dict[str, int], deliveries: dict[str, int]) -> tuple[set[str], set[str]]:
    """Of those leases, the ones nobody has taken over yet: a subscription not claimed again, an
    event neither claimed again nor delivered."""
    async with engine.connect() as conn:
        sub_rows = (await conn.execute(
            text("SELECT id, lease_epoch FROM subscriptions WHERE id = ANY(:ids)"),
            {"ids": [uuid.UUID(i) for i in polls]})).all() if polls else []
        event_rows = (await conn.execute(
            text("SELECT id, lease_epoch, state FROM trigger_events WHERE id = ANY(:ids)"),
            {"ids": list(deliveries)})).all() if deliveries else []
    subs = {str(i) for i, epoch in sub_rows if epoch == polls[str(i)]}
    events = {str(i) for i, epoch, state in event_rows if epoch == deliveries[str(i)] and state == "pending"}
    return subs, events


async def _workspace_events(engine: Any, ws: uuid.UUID) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(text(
            "SELECT e.id, e.subscription_id, e.event_key, e.state, e.attempts FROM trigger_events e "
            "JOIN subscriptions s ON s.id = e.subscription_id WHERE s.workspace_id = :ws"), {"ws": ws})
        return [dict(r) for r in rows.mappings()]


async def _outcomes(engine: Any, ws: uuid.UUID) -> Counter[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(text(
            "SELECT r.outcome, count(*) FROM poll_runs r JOIN subscriptions s ON s.id = r.subscription_id "
            "WHERE s.workspace_id = :ws GROUP BY r.outcome"), {"ws": ws})
        return Counter({o: n for o, n in rows})


def _deliveries_total(metrics: str) -> int:
    return int(sum(float(v) for v in re.findall(r'^odeus_deliveries_total\{[^}]*\} (\S+)$', metrics, re.MULTILINE)))


async def _subscribe(client: Any, tenant: Any, world: ChaosWorld) -> tuple[dict[str, int], dict[str, str]]:
    """The trigger, and one subscription of it per upstream stream: (subscription id → stream),
    (subscription id → signing secret)."""
    subs: dict[str, int] = {}
    secrets: dict[str, str] = {}
    access = logging.getLogger("odeus_triggers.access")
    level = access.level
    access.setLevel(logging.WARNING)  # twenty access lines would bury the summary under -s
    try:
        trigger_id = await create_trigger(client, tenant, CHAOS_TRIGGER)
        for k in range(SUBSCRIPTIONS):
            # backfillSince: the first poll delivers what it finds instead of seeding it.
            created = await client.post(subscriptions_path("", tenant.integration_id, trigger_id), json={
                "inputs": {"url": world.stream_url(k)}, "webhookUrl": world.hook_url, "intervalSeconds": 1,
                "backfillSince": "2020-01-01T00:00:00Z"}, headers=tenant.auth)
            assert created.status_code == 201, created.text
            sub_id = created.json()["subscription"]["id"]
            subs[sub_id], secrets[sub_id] = k, created.json()["signingSecret"]
    finally:
        access.setLevel(level)
    return subs, secrets


async def test_kill_9_mid_run_every_item_is_delivered_at_least_once_and_duplicates_keep_their_webhook_id(
    settings, is_postgres: bool, database_url: str, world: ChaosWorld, tmp_path: Path, capsys
):
    require_postgres(is_postgres)
    # The API app that accepts a loopback webhookUrl, as an operator's own workflow engine.
    async with started_app(settings, delivery_allow_private_network=True) as app, client_of(app) as client:
        engine = app.state.engine
        tenant = await make_tenant(app)
        try:
            await _chaos(client, engine, tenant, database_url, world, tmp_path, capsys)
        finally:
            await pause_workspace(engine, tenant.workspace_id)


async def _chaos(client: Any, engine: Any, tenant: Any, database_url: str, world: ChaosWorld, tmp_path: Path,
                 capsys: Any) -> None:
    ws = tenant.workspace_id
    subs, secrets = await _subscribe(client, tenant, world)

    env = worker_env(database_url, ODEUS_POLLING_TIMEOUT_SECONDS=str(WALL_S),
                     ODEUS_POLLING_ALLOW_PRIVATE_NETWORK="true", ODEUS_DELIVERY_ALLOW_PRIVATE_NETWORK="true",
                     ODEUS_POLLING_WORKERS="4", ODEUS_POLLING_MAX_RUNS_PER_WORKSPACE="4")
    logs = {name: tmp_path / f"worker-{name}.log" for name in ("a", "b", "a2")}

    def all_logs() -> str:
        return "\n".join(f"--- {name}\n{tail(log)}" for name, log in logs.items())

    with ExitStack() as stack:
        a = stack.enter_context(worker_process(env, logs["a"], "--concurrency", CONCURRENCY))
        b = stack.enter_context(worker_process(env, logs["b"], "--concurrency", CONCURRENCY))
        world.start_production()
        started = time.monotonic()

        # Mid-run: both workers have polled and delivered. Then the first moment when worker a
        # holds both a poll (its fetch upstream unanswered) and a delivery (received, unanswered).
        await asyncio.sleep(KILL_AT_S)
        metrics = a.get("/metrics").text
        before_kill = {"polls": polls_total(metrics), "deliveries": _deliveries_total(metrics)}
        assert before_kill["polls"] > 0 and before_kill["deliveries"] > 0, (before_kill, all_logs())
        assert polls_total(b.get("/metrics").text) > 0, all_logs()
        while True:
            tree = descendants(a.process.pid)
            # Arrived within the last 0.12 s: still unanswered (0.2 s, 0.25 s) when the kill lands.
            caught = world.in_flight_from(tree, arrived_within_s=0.12)
            if {kind for kind, _ in caught} >= {"fetch", "delivery"}:
                break
            assert time.monotonic() - started < KILL_AT_S + CATCH_WITHIN_S, \
                f"worker a never had a poll and a delivery in flight at once\n{all_logs()}"
            await asyncio.sleep(0.01)
        a.process.kill()
        assert a.process.wait(timeout=10) == -9
        killed_at = time.monotonic()
        kill_s = killed_at - started
        caught_deliveries = {what for kind, what in caught if kind == "delivery"}
        caught_fetches = {what for kind, what in caught if kind == "fetch"}
        received_at_kill = len(world.snapshot())
        live_polls, live_deliveries = await _live_leases(engine, ws)

        # The restart, at once, as a supervisor would.
        a2 = stack.enter_context(worker_process(env, logs["a2"], "--concurrency", CONCURRENCY))
        restarted_s = time.monotonic() - killed_at
        # The killed worker's sandbox processes do not outlive it.
        orphans = alive(tree - {a.process.pid})
        while orphans and time.monotonic() - killed_at < ORPHANS_GONE_WITHIN_S:
            await asyncio.sleep(0.1)
            orphans = alive(orphans)
        assert not orphans, f"processes of the killed worker still running {ORPHANS_GONE_WITHIN_S:.0f} s after " \
                            f"the kill: {sorted(orphans)}"

        # What the dead worker held: the leases live at the kill that nobody has taken over by
        # the time every survivor's poll and delivery would have finished.
        await asyncio.sleep(max(0.0, STRANDED_AFTER_S - (time.monotonic() - killed_at)))
        stranded_polls, stranded_deliveries = await _still_stranded(engine, live_polls, live_deliveries)
        stranded_polls_at = {i: live_polls[i] for i in stranded_polls}
        stranded_deliveries_at = {i: live_deliveries[i] for i in stranded_deliveries}
        # The delivery caught in flight is among them: received, but its result never written.
        assert caught_deliveries & set(stranded_deliveries_at), (caught_deliveries, stranded_deliveries_at)
        assert stranded_polls_at, (caught_fetches, live_polls)

        recovered_s: float | None = None

        async def check_recovery() -> None:
            nonlocal recovered_s
            if recovered_s is None:
                left = await _still_stranded(engine, stranded_polls_at, stranded_deliveries_at)
                if not left[0] and not left[1]:
                    recovered_s = time.monotonic() - killed_at

        while time.monotonic() - started < max(PRODUCE_S, kill_s + PRODUCE_AFTER_KILL_S):
            await check_recovery()
            await asyncio.sleep(0.25)
        world.stop_production()
        stopped_at = time.monotonic()
        produced = world.produced_ids()

        # The drain: every produced item received, and nothing pending in the outbox.
        drained_s: float | None = None
        while time.monotonic() - stopped_at < DRAIN_WITHIN_S:
            await check_recovery()
            if recovered_s is not None and produced <= world.received_ids():
                pending = [e for e in await _workspace_events(engine, ws) if e["state"] == "pending"]
                if not pending:
                    drained_s = time.monotonic() - stopped_at
                    break
            assert b.process.poll() is None and a2.process.poll() is None, all_logs()
            await asyncio.sleep(0.25)
        if drained_s is None:
            missing = sorted(produced - world.received_ids())
            pending = [e for e in await _workspace_events(engine, ws) if e["state"] == "pending"]
            left = await _still_stranded(engine, stranded_polls_at, stranded_deliveries_at)
            pytest.fail(f"not drained within {DRAIN_WITHIN_S:.0f} s of the end of production: "
                        f"{len(missing)} of {len(produced)} items never received (e.g. {missing[:10]}), "
                        f"{len(pending)} events pending, stranded not taken over: {left}\n{all_logs()}")

        # Both running workers stop cleanly on SIGTERM.
        for w in (b, a2):
            w.process.terminate()
        codes = [w.process.wait(timeout=WALL_S + 15 + 5 + 5) for w in (b, a2)]
    assert codes == [0, 0], all_logs()

    deliveries = world.snapshot()
    rows = await _workspace_events(engine, ws)
    by_key = {(str(r["subscription_id"]), r["event_key"]): r for r in rows}

    # The outbox: one event per produced item, each delivered; none seeded, failed or cancelled.
    states = Counter(r["state"] for r in rows)
    assert states == {"delivered": len(produced)}, states
    assert {r["event_key"] for r in rows} == produced

    # The receiver: every produced item at least once, and nothing else.
    webhook_ids: dict[str, set[str]] = {}
    bodies: dict[str, set[bytes]] = {}
    counts: Counter[str] = Counter()
    for d in deliveries:
        webhook_ids.setdefault(d.item_id, set()).add(d.webhook_id)
        bodies.setdefault(d.item_id, set()).add(d.body)
        counts[d.item_id] += 1
        # Each delivery came from the subscription of its stream, signed with its secret.
        assert subs[d.subscription_id] == int(d.item_id.split("-")[0]), d
        Webhook(secrets[d.subscription_id]).verify(d.body, d.headers)
    assert set(counts) == produced, sorted(produced ^ set(counts))[:10]
    # Every duplicate carries the first delivery's webhook-id: that of the item's one event.
    mixed = {i: ids for i, ids in webhook_ids.items() if len(ids) != 1}
    assert mixed == {}, f"items delivered under more than one webhook-id: {dict(list(mixed.items())[:5])}"
    for d in deliveries:
        assert d.webhook_id == by_key[(d.subscription_id, d.item_id)]["id"], d
    assert len({next(iter(ids)) for ids in webhook_ids.values()}) == len(produced), "one webhook-id per item"
    # And the same bytes on every attempt.
    assert all(len(b) == 1 for b in bodies.values())
    # The delivery the kill interrupted was sent again, after its lease ran out.
    by_webhook_id = Counter(d.webhook_id for d in deliveries)
    assert all(by_webhook_id[i] >= 2 for i in caught_deliveries & set(stranded_deliveries_at)), caught_deliveries

    first_attempt_500 = sum(1 for d in deliveries if d.status == 500)
    duplicates = len(deliveries) - len(counts)
    duplicated_items = sum(1 for n in counts.values() if n > 1)
    first_seen: dict[str, float] = {}
    for d in deliveries:
        first_seen.setdefault(d.item_id, d.at)
    last_new_s = max(first_seen.values()) - stopped_at
    outcomes = await _outcomes(engine, ws)
    assert set(outcomes) <= {"ok", "lease_lost"}, outcomes
    assert recovered_s is not None
    with capsys.disabled():
        print(f"\n[delivery chaos] {SUBSCRIPTIONS} subscriptions x 1 item/s for {stopped_at - started:.0f} s, 2 workers "
              f"(--concurrency {CONCURRENCY}); kill -9 of one at {kill_s:.1f} s ({received_at_kill} POSTs so far), "
              f"restarted and answering in {restarted_s:.1f} s; its sandbox processes gone with it")
        print(f"[delivery chaos] at the kill: {len(live_polls)} poll leases and {len(live_deliveries)} delivery "
              f"leases live; the dead worker's: {len(stranded_polls_at)} polls, {len(stranded_deliveries_at)} "
              f"deliveries (caught in flight: {len(caught_fetches)} fetches, {len(caught_deliveries)} POSTs); all "
              f"taken over {recovered_s:.1f} s after the kill (leases: poll {POLL_LEASE_S:.0f} s, delivery "
              f"{DELIVERY_LEASE_S:.0f} s)")
        print(f"[delivery chaos] produced {len(produced)}, delivered unique {len(counts)}, POSTs {len(deliveries)}, "
              f"duplicates {duplicates} on {duplicated_items} items ({first_attempt_500} after a first-attempt 500, "
              f"{duplicates - first_attempt_500} after the kill), max deliveries per item {max(counts.values())}, "
              f"items with two webhook-ids 0; last new item received {last_new_s:.1f} s and outbox drained "
              f"{drained_s:.1f} s after production stopped; poll outcomes {dict(outcomes)}")
