"""The event routes (RUNTIME.md, "Subscriptions" and "Delivery"): list, read and redeliver, with
events found by real polls. Attempts and delivery states are written directly: the dispatcher
that writes them does not exist yet."""

from datetime import UTC, datetime, timedelta

from odeus_triggers.timestamps import as_utc

from support.events import (
    add_attempt,
    delivering_subscription,
    event_by_key,
    event_row,
    listed_events,
    set_event,
)
from support.helpers import assert_problem
from support.polls import counter_subscription
from support.subscriptions import force_status

STATES = "seeded, pending, delivered, failed, cancelled"


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_events_are_listed_newest_first_by_state_a_page_at_a_time(app, client, tenant):
    sub = await delivering_subscription(client, app, tenant, count=2)
    await sub.set_count(3)
    second = await sub.poll()
    events = (await listed_events(sub))["events"]
    assert [e["eventId"] for e in events][0] == "item-3"
    assert [(e["firstSeenAt"], e["id"]) for e in events] == sorted(
        ((e["firstSeenAt"], e["id"]) for e in events), reverse=True
    )
    newest = events[0]
    assert newest == {
        "id": newest["id"], "eventId": "item-3", "state": "pending", "attempts": 0, "lastStatus": None,
        "lastError": None, "firstSeenAt": second["startedAt"], "deliveredAt": None,
        "data": {"id": "item-3", "lastPollTime": newest["data"]["lastPollTime"]},
    }
    assert newest["id"].startswith("msg_")

    await set_event(app, events[1]["id"], state="delivered", attempts=1, last_status=200,
                    delivered_at=datetime.now(UTC))
    delivered = (await listed_events(sub, state="delivered"))["events"]
    assert [e["id"] for e in delivered] == [events[1]["id"]]
    assert delivered[0]["deliveredAt"].endswith("Z") and delivered[0]["lastStatus"] == 200
    assert [e["id"] for e in (await listed_events(sub, state="pending"))["events"]] == [events[0]["id"], events[2]["id"]]
    assert (await listed_events(sub, state="seeded")) == {"events": [], "nextCursor": None}

    seen, cursor = [], None
    for _ in range(3):
        page = await listed_events(sub, limit=1, **({"cursor": cursor} if cursor else {}))
        seen += page["events"]
        cursor = page["nextCursor"]
    assert cursor is None and [e["id"] for e in seen] == [e["id"] for e in events]


async def test_a_bad_state_limit_or_cursor_is_a_400(app, client, tenant):
    sub = await delivering_subscription(client, app, tenant, count=1)
    for params in ({"state": "sent"}, {"state": ""}, {"limit": 0}, {"limit": 201}, {"cursor": "nope"}):
        response = await client.get(sub.path + "/events", params=params, headers=tenant.auth)
        body = assert_problem(response, 400, "validation_error")
        if "state" in params:
            assert body["errors"] == [{"field": "state", "message": f"must be one of {STATES}"}]


async def test_seeded_events_are_listed_without_data(app, client, tenant):
    sub = await counter_subscription(client, app, tenant, inputs={"count": 2})
    await sub.poll()
    events = (await listed_events(sub, state="seeded"))["events"]
    assert sorted(e["eventId"] for e in events) == ["item-1", "item-2"]
    assert {(e["state"], e["data"], e["attempts"]) for e in events} == {("seeded", None, 0)}


async def test_an_event_is_read_with_its_last_ten_attempts_newest_first(app, client, tenant):
    sub = await delivering_subscription(client, app, tenant, count=1)
    event = await event_by_key(sub, "item-1")
    start = datetime.now(UTC).replace(microsecond=0)
    for i in range(12):
        await add_attempt(app, event["id"], start + timedelta(seconds=i), 500 if i % 2 else None,
                          "http_500" if i % 2 else "timeout")
    await set_event(app, event["id"], attempts=12, last_status=500, last_error="http_500")
    response = await client.get(f"{sub.path}/events/{event['id']}", headers=tenant.auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["event"] == {**event, "attempts": 12, "lastStatus": 500, "lastError": "http_500"}
    assert [_at(a["at"]) for a in body["attempts"]] == [start + timedelta(seconds=i) for i in range(11, 1, -1)]
    assert body["attempts"][0] == {"at": body["attempts"][0]["at"], "status": 500, "durationMs": 12.3, "error": "http_500"}
    assert body["attempts"][1]["status"] is None and body["attempts"][1]["error"] == "timeout"
    assert body["attempts"][0]["at"].endswith(".000Z")


async def test_an_unknown_malformed_or_foreign_event_id(app, client, tenant):
    sub = await delivering_subscription(client, app, tenant, count=1)
    other = await delivering_subscription(client, app, tenant, count=1)
    foreign = (await event_by_key(other, "item-1"))["id"]
    for event_id in ("msg_" + "0" * 32, foreign):
        for method, suffix in (("GET", ""), ("POST", "/redeliver")):
            response = await client.request(method, f"{sub.path}/events/{event_id}{suffix}", headers=tenant.auth)
            assert_problem(response, 404, "event_not_found")
    assert (await event_row(app, foreign))["lease_epoch"] == 0
    for bad in ("item-1", "msg_", "msg_" + "a" * 37, "msg_a%20b"):
        response = await client.get(f"{sub.path}/events/{bad}", headers=tenant.auth)
        assert assert_problem(response, 400, "validation_error")["errors"][0]["field"] == "eventId"


async def test_redeliver_queues_one_more_attempt_now_in_any_state(app, client, tenant, base):
    sub = await delivering_subscription(client, app, tenant, count=2)
    pending, spent = await event_by_key(sub, "item-1"), await event_by_key(sub, "item-2")
    delivered_at = datetime.now(UTC) - timedelta(days=1)
    await set_event(app, spent["id"], state="failed", attempts=10, last_status=503, last_error="http_503",
                    delivered_at=delivered_at, next_attempt_at=None, lease_epoch=4)
    later = datetime.now(UTC) + timedelta(hours=2)
    await set_event(app, pending["id"], attempts=3, next_attempt_at=later)
    path = sub.path.replace("/integrations/", f"{base}/integrations/", 1)
    for event, epoch in ((pending, 1), (spent, 5)):
        before = datetime.now(UTC) - timedelta(seconds=5)
        response = await client.post(f"{path}/events/{event['id']}/redeliver", headers=tenant.auth)
        assert response.status_code == 202, response.text
        shown = response.json()["event"]
        assert (shown["id"], shown["state"]) == (event["id"], "pending")
        row = await event_row(app, event["id"])
        assert (row["state"], row["lease_epoch"], row["lease_expires_at"]) == ("pending", epoch, None)
        assert before <= as_utc(row["next_attempt_at"]) <= datetime.now(UTC) + timedelta(seconds=5)
    # Past the schedule's end: the count stays, so the dispatcher gives it one attempt, then fails it again.
    shown = (await event_by_key(sub, "item-2"))
    assert (shown["attempts"], shown["lastStatus"], _at(shown["deliveredAt"])) == (
        10, 503, delivered_at.replace(microsecond=delivered_at.microsecond // 1000 * 1000))
    assert (await event_by_key(sub, "item-1"))["attempts"] == 3


async def test_redeliver_without_a_body_is_409_and_changes_nothing(app, client, tenant):
    seeded_sub = await counter_subscription(client, app, tenant, inputs={"count": 1})
    await seeded_sub.poll()
    seeded = (await listed_events(seeded_sub))["events"][0]
    sub = await delivering_subscription(client, app, tenant, count=1)
    swept = await event_by_key(sub, "item-1")
    await set_event(app, swept["id"], state="delivered", body=None)
    for owner, event in ((seeded_sub, seeded), (sub, swept)):
        before = await event_row(app, event["id"])
        response = await client.post(f"{owner.path}/events/{event['id']}/redeliver", headers=tenant.auth)
        assert "no stored body" in assert_problem(response, 409, "event_not_deliverable")["detail"]
        assert await event_row(app, event["id"]) == before


async def test_a_disabled_subscriptions_event_is_queued_to_wait(app, client, tenant):
    sub = await delivering_subscription(client, app, tenant, count=1)
    event = await event_by_key(sub, "item-1")
    await set_event(app, event["id"], state="delivered", attempts=1, delivered_at=datetime.now(UTC))
    await force_status(app, sub.id, "disabled")
    response = await client.post(f"{sub.path}/events/{event['id']}/redeliver", headers=tenant.auth)
    assert response.status_code == 202, response.text
    assert response.json()["event"]["state"] == "pending"
    assert (await sub.read())["status"] == "disabled"


async def test_a_redeliver_retried_with_its_idempotency_key_is_replayed(app, client, tenant):
    sub = await delivering_subscription(client, app, tenant, count=1)
    event = await event_by_key(sub, "item-1")
    headers = {**tenant.auth, "Idempotency-Key": f"redeliver-{event['id']}"}
    first = await client.post(f"{sub.path}/events/{event['id']}/redeliver", headers=headers)
    again = await client.post(f"/api/public{sub.path}/events/{event['id']}/redeliver", headers=headers)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.headers["idempotent-replayed"] == "true" and again.json() == first.json()
    assert (await event_row(app, event["id"]))["lease_epoch"] == 1
