"""The embedded mode (RUNTIME.md, "Processes"): `serve` on SQLite polls in the API process by
default; on Postgres it does not, unless `--with-worker` is given."""

import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from runtime_support import IDS_TRIGGER, bootstrap, process_env, wait_for

from support.helpers import fresh_postgres_database, served
from support.subscriptions import WEBHOOK

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")


def _client(origin: str, tenant: dict[str, str]) -> httpx.Client:
    return httpx.Client(base_url=origin, trust_env=False, timeout=10, headers={"Authorization": f"Bearer {tenant['apiKey']}"})


def _subscribe(client: httpx.Client, tenant: dict[str, str]) -> str:
    """A trigger and a subscription polled every second, made through the served API; its path."""
    base = f"/integrations/v1/{tenant['integrationId']}/triggers"
    created = client.post(f"{base}/create", json=IDS_TRIGGER)
    assert created.status_code == 201, created.text
    trigger_id = created.json()["trigger"]["id"]
    subscribed = client.post(f"{base}/{trigger_id}/subscriptions",
                             json={"inputs": {"ids": "1,2,3"}, "webhookUrl": WEBHOOK, "intervalSeconds": 1})
    assert subscribed.status_code == 201, subscribed.text
    return f"{base}/{trigger_id}/subscriptions/{subscribed.json()['subscription']['id']}"


def _read(client: httpx.Client, path: str) -> dict[str, Any]:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return dict(response.json()["subscription"])


def test_serve_on_sqlite_polls_in_the_api_process_by_default(tmp_path: Path):
    env = process_env(f"sqlite+aiosqlite:///{tmp_path / 'embedded.db'}")
    assert "ODEUS_EMBEDDED_WORKER" not in env  # the default, as `make run` starts it
    tenant = bootstrap(env)
    log = tmp_path / "serve.log"
    with served(env, log, embedded_worker=None) as origin, _client(origin, tenant) as client:
        path = _subscribe(client, tenant)
        # The first poll seeds; the next ones succeed with nothing new, each moving lastPollTime.
        first = wait_for(lambda: _read(client, path)["lastPollTime"], 30, "a poll by the embedded scheduler", log)
        shown = wait_for(lambda: (s := _read(client, path))["lastPollTime"] != first and s, 30, "a second poll", log)
        assert shown["status"] == "active" and shown["consecutiveFailures"] == 0
        metrics = httpx.get(f"{origin}/metrics", trust_env=False).text
        assert 'odeus_polls_total{outcome="seeded"} 1.0' in metrics, metrics[-2000:]
        assert 'odeus_polls_total{outcome="ok"}' in metrics


@pytest.mark.skipif(not TEST_DATABASE_URL, reason="Postgres only (TEST_DATABASE_URL)")
def test_serve_on_postgres_polls_only_with_the_worker_flag(tmp_path: Path):
    with fresh_postgres_database(TEST_DATABASE_URL or "", "odeus_embed") as url:
        env = process_env(url)
        tenant = bootstrap(env)
        log = tmp_path / "serve.log"
        with served(env, log, embedded_worker=None) as origin, _client(origin, tenant) as client:
            path = _subscribe(client, tenant)
            # Due at once and polled every second by anyone polling: 4 s is plenty to see it.
            time.sleep(4)
            assert _read(client, path)["lastPolledAt"] is None
            metrics = httpx.get(f"{origin}/metrics", trust_env=False).text
            assert "odeus_polls_total{" not in metrics

        with_worker = served(env, tmp_path / "with-worker.log", 60, 1, "--with-worker", embedded_worker=None)
        with with_worker as origin, _client(origin, tenant) as client:
            shown = wait_for(lambda: _read(client, path)["lastPolledAt"] and _read(client, path), 30,
                             "a poll by serve --with-worker", tmp_path / "with-worker.log")
            assert shown["lastPollTime"] is not None and shown["consecutiveFailures"] == 0
