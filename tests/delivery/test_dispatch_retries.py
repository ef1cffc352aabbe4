"""Retries, Retry-After and redelivery, by a real `odeus-triggers worker` to a real receiver on
loopback (RUNTIME.md, "Delivery"). The worker runs with ODEUS_DELIVERY_RETRY_SCALE=0.01: the
schedule's 5 s and 5 min are 50 ms and 3 s, while a receiver's Retry-After is kept as it is."""

import asyncio
import os

import pytest
from dispatch_support import (
    RETRY_SCALE,
    at,
    next_attempt_in,
    subscribe,
    until,
)

from support.receiver import Reply, receiving

pytestmark = pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL"),
    reason="Postgres only (TEST_DATABASE_URL): worker processes deliver from the shared Postgres",
)

JITTER = 0.10


async def test_two_500s_then_a_204_is_three_attempts_on_the_schedule_with_one_webhook_id(api):
    client, tenant, _ = api
    with receiving() as rx:
        rx.script("/hook", Reply(500), Reply(500))  # then 204
        sub = await subscribe(client, tenant, rx.url("/hook"), "1")
        [event] = await sub.settled(1)
        got = rx.wait(3, "/hook")
        await asyncio.sleep(1.0)  # nothing more follows a success
        assert len(rx.received("/hook")) == 3

    assert [r.status for r in got] == [500, 500, 204]
    assert {r.id for r in got} == {event["id"]} and len({r.body for r in got}) == 1
    assert (event["state"], event["attempts"], event["lastStatus"], event["lastError"]) == ("delivered", 3, 204, None)
    assert event["deliveredAt"] is not None

    shown, attempts = await sub.event(event["id"])
    assert shown == event
    # Newest first, with what each attempt got.
    assert [(a["status"], a["error"]) for a in attempts] == [(204, None), (500, "HTTP 500"), (500, "HTTP 500")]
    assert all(a["durationMs"] >= 0 for a in attempts)
    third, second, first = (at(a["at"]) for a in attempts)
    # The schedule: the 1st retry after 5 s, the 2nd after 5 min (each scaled, ±10 %). The claim
    # loop adds up to its idle wait (0.5 s) and a statement or two.
    assert 5 * RETRY_SCALE * (1 - JITTER) <= (second - first).total_seconds() < 5 * RETRY_SCALE + 1.5
    assert 300 * RETRY_SCALE * (1 - JITTER) <= (third - second).total_seconds() < 300 * RETRY_SCALE * (1 + JITTER) + 1.5
    # The receiver saw them when the worker says it made them.
    assert abs(got[0].at - first.timestamp()) < 1.0 and abs(got[2].at - third.timestamp()) < 1.0


async def test_retry_after_on_a_429_is_a_floor_for_the_next_attempt_and_is_capped_at_an_hour(api):
    client, tenant, engine = api
    with receiving() as rx:
        rx.script("/slow", Reply(429, {"Retry-After": "7"}))  # then 204
        rx.script("/busy", Reply(503, {"Retry-After": "7200"}))
        slow = await subscribe(client, tenant, rx.url("/slow"), "1")
        busy = await subscribe(client, tenant, rx.url("/busy"), "1")
        [slow_first] = rx.wait(1, "/slow")
        [busy_first] = rx.wait(1, "/busy")

        async def attempted(sub):
            events = await sub.events()
            return events[0] if events and events[0]["attempts"] else None

        pending = await until(lambda: attempted(slow), 10, "the 429 recorded")
        assert (pending["state"], pending["attempts"], pending["lastStatus"], pending["lastError"]) == \
            ("pending", 1, 429, "HTTP 429")
        # Without the floor, the next attempt would be due in 50 ms (5 s scaled): it is due in 7 s.
        due = await next_attempt_in(engine, pending["id"])
        assert due is not None and 7.0 <= due.total_seconds() < 8.0, due
        [event] = await slow.settled(1, timeout=15)
        got = rx.wait(2, "/slow")

        # A floor past an hour is capped at one hour, and the event waits for it.
        held = await until(lambda: attempted(busy), 10, "the 503 recorded")
        assert (held["state"], held["attempts"], held["lastStatus"]) == ("pending", 1, 503)
        due = await next_attempt_in(engine, held["id"])
        assert due is not None and 3600 <= due.total_seconds() < 3601, due
        assert len(rx.received("/busy")) == 1 and busy_first.status == 503

    assert [r.status for r in got] == [429, 204] and slow_first.id == got[1].id == event["id"]
    assert got[1].at - got[0].at >= 7.0 - 0.05  # the receiver's own clock: no earlier than it asked
    assert got[1].at - got[0].at < 7.0 + 2.0
    _, attempts = await slow.event(event["id"])
    assert [a["status"] for a in attempts] == [204, 429]
    assert (at(attempts[0]["at"]) - at(attempts[1]["at"])).total_seconds() >= 7.0


async def test_a_delivered_event_redelivered_is_delivered_again_with_the_same_webhook_id(api):
    client, tenant, _ = api
    with receiving() as rx:
        sub = await subscribe(client, tenant, rx.url("/hook"), "1")
        [first] = await sub.settled(1)
        [sent] = rx.wait(1, "/hook")

        queued = await sub.redeliver(first["id"])
        assert queued["id"] == first["id"] and queued["state"] == "pending"
        again = rx.wait(2, "/hook")[1]

        async def redelivered():
            event, attempts = await sub.event(first["id"])
            return (event, attempts) if event["state"] == "delivered" and len(attempts) == 2 else None

        event, attempts = await until(redelivered, 10, "the redelivery recorded")
        await asyncio.sleep(0.5)
        assert len(rx.received("/hook")) == 2

    assert again.id == sent.id == first["id"]
    assert again.body == sent.body  # the same bytes, the first-seen timestamp included
    assert (event["attempts"], event["lastStatus"]) == (2, 204)
    assert at(event["deliveredAt"]) > at(first["deliveredAt"])
    assert [a["status"] for a in attempts] == [204, 204]
    assert len(await sub.events()) == 1  # the same event, not a new one
