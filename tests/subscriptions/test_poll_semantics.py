"""The polling contract (RUNTIME.md, "Polling"), made deterministic with poll-now: seeding,
exactly-once new events, backfillSince, overlapping windows, the per-poll cap, pause and resume,
and the dedupe key."""

from datetime import datetime, timedelta

from support.polls import Polled, counter_subscription, states


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_the_first_poll_seeds_then_new_events_are_stored_exactly_once(app, client, tenant):
    sub = await counter_subscription(client, app, tenant, inputs={"count": 3})
    seed = await sub.poll()
    assert (seed["outcome"], seed["returned"], seed["new"], seed["capped"]) == ("seeded", 3, 0, False)
    assert states(await sub.events()) == {"item-1": "seeded", "item-2": "seeded", "item-3": "seeded"}
    assert all(e["data"] is None for e in (await sub.events()).values())  # never sent: no body kept
    assert (await sub.read())["lastPollTime"] == seed["startedAt"]

    same = await sub.poll()
    assert (same["outcome"], same["returned"], same["new"]) == ("ok", 3, 0)
    assert (await sub.read())["lastPollTime"] == same["startedAt"]

    await sub.set_count(5)
    grown = await sub.poll()
    assert (grown["outcome"], grown["returned"], grown["new"], grown["capped"]) == ("ok", 5, 2, False)
    events = await sub.events()
    assert {k: s for k, s in states(events).items() if s == "pending"} == {"item-4": "pending", "item-5": "pending"}
    # The code saw the previous run's start as lastPollTime, in the ISO form with milliseconds and Z.
    assert events["item-4"]["data"] == {"id": "item-4", "lastPollTime": same["startedAt"]}

    for _ in range(2):
        assert (await sub.poll())["new"] == 0
    assert await sub.events() == events  # no second row, no state change
    assert [p["new"] for p in (await sub.history())["polls"]] == [0, 0, 2, 0, 0]


async def test_backfill_since_is_the_first_lastPollTime_and_that_poll_delivers(app, client, tenant):
    sub = await counter_subscription(
        client, app, tenant, inputs={"count": 2}, backfillSince="2024-05-01T12:00:00+02:00"
    )
    first = await sub.poll()
    assert (first["outcome"], first["returned"], first["new"]) == ("ok", 2, 2)
    events = await sub.events()
    assert states(events) == {"item-1": "pending", "item-2": "pending"}
    assert events["item-1"]["data"]["lastPollTime"] == "2024-05-01T10:00:00.000Z"
    assert (await sub.read())["lastPollTime"] == first["startedAt"]

    await sub.set_count(3)
    second = await sub.poll()
    assert (second["outcome"], second["new"]) == ("ok", 1)
    assert (await sub.events())["item-3"]["data"]["lastPollTime"] == first["startedAt"]


async def test_overlapping_windows_deliver_only_the_ids_not_seen(app, client, tenant):
    sub = await counter_subscription(client, app, tenant, inputs={"count": 3, "start": 1})
    await sub.poll()
    for start, new_key in ((2, "item-4"), (3, "item-5")):
        await sub.set_count(3, start=start)
        run = await sub.poll()
        assert (run["returned"], run["new"]) == (3, 1)
        assert states(await sub.events())[new_key] == "pending"
    assert sorted(k for k, s in states(await sub.events()).items() if s == "pending") == ["item-4", "item-5"]


async def test_250_new_events_are_drained_100_at_a_time_without_moving_lastPollTime(app, client, tenant):
    sub = await counter_subscription(client, app, tenant, inputs={"count": 0})
    seed = await sub.poll()
    await sub.set_count(250)
    runs = []
    for _ in range(3):
        runs.append(await sub.poll())
        held = await sub.read()
        if runs[-1]["capped"]:
            assert held["lastPollTime"] == seed["startedAt"]
            # Due again at once, not after the interval (a day).
            assert _at(held["nextPollAt"]) - _at(runs[-1]["finishedAt"]) < timedelta(seconds=5)
    assert [(r["outcome"], r["returned"], r["new"], r["capped"]) for r in runs] == [
        ("ok", 250, 100, True), ("ok", 250, 100, True), ("ok", 250, 50, False),
    ]
    assert (await sub.read())["lastPollTime"] == runs[-1]["startedAt"]
    events = await sub.events()
    assert len(events) == 250 and set(states(events).values()) == {"pending"}
    # Delivered in the order returned, and each capped poll saw the same window.
    assert {e["data"]["lastPollTime"] for e in events.values()} == {seed["startedAt"]}
    assert (await sub.poll())["new"] == 0


async def test_pause_and_resume_do_not_reseed(app, client, tenant):
    sub = await counter_subscription(client, app, tenant, inputs={"count": 1})
    seed = await sub.poll()
    assert (await sub.patch({"status": "paused"}))["nextPollAt"] is None
    await sub.set_count(3)  # created during the pause
    resumed = await sub.patch({"status": "active"})
    assert (resumed["status"], resumed["lastPollTime"]) == ("active", seed["startedAt"])
    run = await sub.poll()
    assert (run["outcome"], run["new"]) == ("ok", 2)
    events = await sub.events()
    assert states(events) == {"item-1": "seeded", "item-2": "pending", "item-3": "pending"}
    assert events["item-2"]["data"]["lastPollTime"] == seed["startedAt"]


ONE_THREE_WAYS = """
if (!inputs.count) return [];
return [{ id: 1, v: "number" }, { id: 1.0, v: "float" }, { id: "1", v: "string" }, { id: 2.5 }, { id: "2.50" }];
"""


async def test_1_and_1_point_0_and_the_string_1_are_one_event(app, client, tenant):
    sub: Polled = await counter_subscription(client, app, tenant, code=ONE_THREE_WAYS, inputs={"count": 0})
    assert (await sub.poll())["outcome"] == "seeded"
    await sub.set_count(1)
    run = await sub.poll()
    assert (run["returned"], run["new"]) == (5, 3)
    events = await sub.events()
    assert states(events) == {"1": "pending", "2.5": "pending", "2.50": "pending"}
    assert events["1"]["data"] == {"id": 1, "v": "number"}  # the first of them, as returned
    assert (await sub.poll())["new"] == 0
