"""What a receiver gets from a real `odeus-triggers worker` (RUNTIME.md, "Delivery"): Standard
Webhooks headers that the `standardwebhooks` package's own verifier accepts with the secret the
subscription's creation returned, the same bytes on every attempt, the documented body, and both
signatures during a rotation."""

import json
import os

import pytest
from dispatch_support import (
    Sub,
    counter,
    subscribe,
    until,
)
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from odeus_triggers.subscriptions.service import new_signing_secret

from support.receiver import Reply, receiving

pytestmark = pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL"),
    reason="Postgres only (TEST_DATABASE_URL): worker processes deliver from the shared Postgres; "
    "test_dispatch_embedded.py covers SQLite",
)


def _verifies(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


async def test_a_delivery_is_a_signed_standard_webhook_with_the_same_bytes_on_every_attempt(api, worker):
    client, tenant, _ = api
    before = worker.get("/metrics").text
    with receiving() as rx:
        rx.script("/hook", Reply(500))  # then 204: two attempts of one event
        sub = await subscribe(client, tenant, rx.url("/hook"), "1")
        [event] = await sub.settled(1)
        got = rx.wait(2, "/hook")

    assert len(got) == 2, got
    # One event, one webhook-id on both attempts: the event's msg_… id, as the API shows it.
    assert {r.headers["webhook-id"] for r in got} == {event["id"]}
    assert event["id"].startswith("msg_") and event["eventId"] == "1"
    assert (event["state"], event["attempts"], event["lastStatus"]) == ("delivered", 2, 204)
    # The stored body is sent as it is: byte-identical on both attempts.
    assert got[0].body == got[1].body
    for r in got:
        assert r.headers["content-type"] == "application/json"
        assert r.headers["webhook-signature"].startswith("v1,") and " " not in r.headers["webhook-signature"]
        # The package's own verifier, with the secret shown once at creation.
        assert Webhook(sub.secret).verify(r.body, r.headers) == json.loads(r.body)
        assert not _verifies(new_signing_secret(), r.body, r.headers)
        assert not _verifies(sub.secret, r.body.replace(b'"1"', b'"2"'), r.headers)

    body = json.loads(got[0].body)
    assert body == {
        "type": "trigger.event",
        "timestamp": event["firstSeenAt"],  # when the event was first seen, not when it was sent
        "data": {"id": "1", "title": "item 1"},
        "trigger": {"id": sub.trigger_id, "slug": sub.trigger_slug},
        "integration": {"id": tenant.integration_id},
        "subscription": {"id": sub.id},
    }
    assert body["data"] == event["data"]
    # Minified: the bytes are the compact JSON encoding.
    assert got[0].body == json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()

    # The worker counts the delivered attempt (and the failed one), and the latency of the delivery.
    # Other tests' leftover events to public addresses may add failures, never deliveries.
    async def counted() -> str | None:
        text = worker.get("/metrics").text
        return text if counter(text, "odeus_deliveries_total", "delivered") > counter(
            before, "odeus_deliveries_total", "delivered") else None

    after = await until(counted, 10, "odeus_deliveries_total{outcome=delivered} on the worker's /metrics")
    def more(outcome: str) -> float:
        return counter(after, "odeus_deliveries_total", outcome) - counter(before, "odeus_deliveries_total", outcome)

    assert more("delivered") == 1 and more("failed") >= 1
    assert "odeus_delivery_latency_seconds_count" in after


async def _delivered_to(rx, sub: Sub, count: int):
    await sub.settled(count)
    return rx.wait(count, "/hook")


async def test_during_a_rotation_both_secrets_verify_and_only_the_newest_two_sign(api):
    client, tenant, _ = api
    with receiving() as rx:
        sub = await subscribe(client, tenant, rx.url("/hook"), "1")
        [first] = await _delivered_to(rx, sub, 1)
        assert len(first.headers["webhook-signature"].split(" ")) == 1
        assert _verifies(sub.secret, first.body, first.headers)

        second_secret = await sub.rotate()
        assert second_secret.startswith("whsec_") and second_secret != sub.secret
        # A new event, found by the next poll, is signed with both.
        await sub.patch(inputs={"ids": "1,2"})
        second = (await _delivered_to(rx, sub, 2))[1]
        assert json.loads(second.body)["data"]["id"] == "2"
        assert len(second.headers["webhook-signature"].split(" ")) == 2
        assert _verifies(sub.secret, second.body, second.headers)  # a receiver that has not switched yet
        assert _verifies(second_secret, second.body, second.headers)  # one that has
        assert not _verifies(new_signing_secret(), second.body, second.headers)

        # A second rotation within 24 h: the oldest secret no longer signs.
        third_secret = await sub.rotate()
        await sub.redeliver(second.id)
        got = rx.wait(3, "/hook")
        third = got[2]
        assert third.id == second.id and third.body == second.body
        assert len(third.headers["webhook-signature"].split(" ")) == 2
        assert _verifies(second_secret, third.body, third.headers)
        assert _verifies(third_secret, third.body, third.headers)
        assert not _verifies(sub.secret, third.body, third.headers)
