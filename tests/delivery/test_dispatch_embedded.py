"""The embedded mode end to end (RUNTIME.md, "Processes"): `odeus-triggers serve` on SQLite, as
`make run` starts it, polls in the API process and delivers to a real receiver on loopback. It
runs `serve` on a SQLite file of its own, whatever database the rest of the run uses."""

from pathlib import Path

import httpx
from dispatch_support import BACKFILL, IDS_TRIGGER, bootstrap, counter, process_env, wait_for
from standardwebhooks.webhooks import Webhook

from support.helpers import served
from support.receiver import receiving


def test_serve_on_sqlite_delivers_what_its_embedded_worker_finds(tmp_path: Path):
    env = process_env(f"sqlite+aiosqlite:///{tmp_path / 'embedded.db'}", ODEUS_DELIVERY_ALLOW_PRIVATE_NETWORK="true")
    assert "ODEUS_EMBEDDED_WORKER" not in env  # the default: on for SQLite
    tenant = bootstrap(env)
    log = tmp_path / "serve.log"
    auth = {"Authorization": f"Bearer {tenant['apiKey']}"}
    with receiving() as rx, served(env, log, embedded_worker=None) as origin, \
            httpx.Client(base_url=origin, trust_env=False, timeout=10, headers=auth) as client:
        base = f"/integrations/v1/{tenant['integrationId']}/triggers"
        created = client.post(f"{base}/create", json=IDS_TRIGGER)
        assert created.status_code == 201, created.text
        trigger_id = created.json()["trigger"]["id"]
        subscribed = client.post(f"{base}/{trigger_id}/subscriptions", json={
            "inputs": {"ids": "1,2"}, "webhookUrl": rx.url("/hook"), "intervalSeconds": 1, "backfillSince": BACKFILL})
        assert subscribed.status_code == 201, subscribed.text
        secret = subscribed.json()["signingSecret"]
        path = f"{base}/{trigger_id}/subscriptions/{subscribed.json()['subscription']['id']}"

        got = rx.wait(2, "/hook", timeout=30)

        def delivered() -> list[dict] | None:
            events = client.get(f"{path}/events", params={"state": "delivered"}).json()["events"]
            return events if len(events) == 2 else None

        def counted() -> str | None:
            text = client.get("/metrics").text
            return text if counter(text, "odeus_deliveries_total", "delivered") >= 2 else None

        events = wait_for(delivered, 10, "both events delivered", log)
        metrics = wait_for(counted, 10, "the API's delivery metrics", log)

    assert len(got) == 2 and {r.status for r in got} == {204}
    assert {r.id for r in got} == {e["id"] for e in events}
    assert sorted(Webhook(secret).verify(r.body, r.headers)["data"]["id"] for r in got) == ["1", "2"]
    assert {(e["attempts"], e["lastStatus"]) for e in events} == {(1, 204)}
    assert counter(metrics, "odeus_deliveries_total", "delivered") == 2
    assert counter(metrics, "odeus_deliveries_total", "failed") == 0
