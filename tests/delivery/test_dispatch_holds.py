"""Receivers that refuse or stall, with a real `odeus-triggers worker` (RUNTIME.md, "Delivery"): a
410 disables the subscription and holds its events until it is active again; a receiver that never
answers costs its attempts a timeout, and holds only its host's share of the worker's slots."""

import asyncio
import os

import pytest
from dispatch_support import (
    CONCURRENCY,
    PER_HOST,
    STALLED_AT_MOST,
    TIMEOUT_S,
    at,
    next_attempt_in,
    subscribe,
    until,
)

from support.receiver import HANG, Reply, receiving

pytestmark = pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL"),
    reason="Postgres only (TEST_DATABASE_URL): worker processes deliver from the shared Postgres",
)


async def test_a_410_disables_the_subscription_and_holds_its_events_until_it_is_active_again(api):
    client, tenant, engine = api
    with receiving() as rx:
        rx.script("/gone", default=Reply(410))
        sub = await subscribe(client, tenant, rx.url("/gone"), "1,2")
        rx.wait(1, "/gone")

        async def disabled():
            shown = await sub.read()
            return shown if shown["status"] == "disabled" else None

        shown = await until(disabled, 10, "the subscription disabled")
        assert shown["pausedReason"] == "webhook_gone"
        # Retries are 50 ms apart in this worker: held events would have been tried many times by now.
        await asyncio.sleep(1.5)
        polls = len((await sub.call("GET", "/polls"))["polls"])
        tried = len(rx.received("/gone"))
        assert tried in (1, 2)  # the second event went with the first, or was held before its turn
        events = await sub.events()
        assert sorted(e["eventId"] for e in events) == ["1", "2"]
        assert {e["state"] for e in events} == {"pending"}
        assert sum(e["attempts"] for e in events) == tried
        assert all(e["lastStatus"] == 410 for e in events if e["attempts"])
        for e in events:  # held: nothing is due
            assert e["attempts"] == 0 or await next_attempt_in(engine, e["id"]) is None
        await asyncio.sleep(2.0)
        # Disabled stops both: no attempt, and no poll either (polled every second while active).
        assert len(rx.received("/gone")) == tried
        assert len((await sub.call("GET", "/polls"))["polls"]) == polls
        assert (await sub.read())["status"] == "disabled"

        # The receiver is back; activating the subscription sends what was held, the 410'd one included.
        rx.script("/gone", default=Reply(204))
        resumed = await sub.patch(status="active")
        assert (resumed["status"], resumed["pausedReason"]) == ("active", None)
        delivered = await sub.settled(2)
        got = rx.wait(tried + 2, "/gone")

    assert sorted(e["eventId"] for e in delivered) == ["1", "2"]
    assert [r.status for r in got[tried:]] == [204, 204]
    assert {r.id for r in got[tried:]} == {e["id"] for e in delivered}
    for e in delivered:
        _, attempts = await sub.event(e["id"])
        assert attempts[0]["status"] == 204 and [a["status"] for a in attempts[1:]] in ([], [410])


async def test_a_receiver_that_never_answers_times_out_and_blocks_no_other_host(api):
    client, tenant, _ = api
    with receiving("127.0.0.1") as stalled, receiving("127.0.0.2") as healthy:
        stalled.script("/hook", default=HANG)
        ids = ",".join(str(n) for n in range(CONCURRENCY + 2))
        hung = await subscribe(client, tenant, stalled.url("/hook"), ids)
        first_hangs = stalled.wait(PER_HOST, "/hook")
        await asyncio.sleep(0.5)
        # More events due than the worker has slots: the stalled host holds its share, or more while
        # half the slots are free, never the half kept for hosts under their share.
        assert PER_HOST <= len(stalled.received("/hook")) <= STALLED_AT_MOST < CONCURRENCY
        began = first_hangs[0].at

        # Another subscription's events, to another host, go through at once meanwhile.
        other = await subscribe(client, tenant, healthy.url("/hook"), "a,b,c")
        delivered = await other.settled(3, timeout=TIMEOUT_S)
        got = healthy.wait(3, "/hook")
        first_seen = {e["id"]: at(e["firstSeenAt"]).timestamp() for e in delivered}
        for r in got:
            assert r.status == 204 and r.at - first_seen[r.id] < 2.5, (r.at, first_seen[r.id])
            assert r.at < began + TIMEOUT_S  # while the stalled host's attempts were still hanging

        # Those attempts end at the timeout, recorded as such; the events stay pending for a retry.
        async def timed_out():
            events = [e for e in await hung.events() if e["attempts"]]
            return events if events else None

        events = await until(timed_out, TIMEOUT_S + 5, "the hanging attempts recorded")
        stalled_requests = len(stalled.received("/hook"))

    for event in events:
        assert event["state"] == "pending" and event["lastStatus"] is None
        assert event["lastError"].startswith("timeout"), event["lastError"]
        _, attempts = await hung.event(event["id"])
        oldest = attempts[-1]
        assert oldest["status"] is None and oldest["error"].startswith("timeout"), oldest
        assert TIMEOUT_S * 1000 * 0.95 <= oldest["durationMs"] < TIMEOUT_S * 1000 + 1500, oldest
    assert stalled_requests <= 2 * STALLED_AT_MOST  # the first attempts, and the retries of those that timed out
