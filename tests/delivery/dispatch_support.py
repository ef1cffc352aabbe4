"""Helpers of the dispatcher tests (RUNTIME.md, "Delivery"): real `odeus-triggers worker` processes
on the test Postgres deliver to a real receiver on loopback (support/receiver.py); subscriptions,
events and attempts are made and read through the public HTTP API."""

import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from support.helpers import Tenant, create_path
from support.runtime import worker_env
from support.subscriptions import subscription_path, subscriptions_path

# The worker helpers of the runtime tests, under the same module name that pytest gives them there.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from runtime_support import IDS_TRIGGER, Worker, bootstrap, process_env, until, wait_for, worker_process  # noqa: E402

__all__ = ["IDS_TRIGGER", "Worker", "bootstrap", "process_env", "until", "wait_for"]

# A worker's deliveries in these tests: to loopback; an attempt times out after TIMEOUT_S; at most
# PER_HOST of CONCURRENCY slots per host; the schedule's delays (5 s, 5 min, 30 min…) scaled down to
# 50 ms, 3 s, 18 s…, while a Retry-After floor stays as the receiver asked. The worker also tries the
# pending events that other tests of the run left behind (to public addresses that do not answer):
# they hold at most PER_HOST slots, which leaves enough for these tests.
TIMEOUT_S = 5.0
CONCURRENCY = 8
PER_HOST = 2
# The slots one host can hold (runtime/lease_loop.py): past its share only while half are free.
STALLED_AT_MOST = max(PER_HOST, CONCURRENCY - CONCURRENCY // 2)
RETRY_SCALE = 0.01
BACKFILL = "2020-01-01T00:00:00Z"


def delivery_env(database_url: str, **extra: str) -> dict[str, str]:
    return worker_env(database_url, ODEUS_DELIVERY_ALLOW_PRIVATE_NETWORK="true",
                      ODEUS_DELIVERY_TIMEOUT_SECONDS=str(TIMEOUT_S), ODEUS_DELIVERY_CONCURRENCY=str(CONCURRENCY),
                      ODEUS_DELIVERY_PER_HOST=str(PER_HOST), ODEUS_DELIVERY_RETRY_SCALE=str(RETRY_SCALE), **extra)


@contextmanager
def delivery_worker(database_url: str, log: Path) -> Iterator[Worker]:
    """One worker for a test module: started once, killed at the end (its deliveries are idempotent)."""
    with worker_process(delivery_env(database_url), log, "--concurrency", "4") as worker:
        yield worker


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def counter(metrics: str, name: str, outcome: str) -> float:
    prefix = f'{name}{{outcome="{outcome}"}} '
    return sum(float(line[len(prefix):]) for line in metrics.splitlines() if line.startswith(prefix))


@dataclass
class Sub:
    """A subscription made through the API, with the signing secret its creation returned."""

    client: httpx.AsyncClient
    tenant: Tenant
    trigger_id: str
    trigger_slug: str
    id: str
    secret: str

    @property
    def path(self) -> str:
        return subscription_path("", self.tenant.integration_id, self.trigger_id, self.id)

    async def call(self, method: str, suffix: str = "", expect: int = 200, **kwargs: Any) -> dict[str, Any]:
        response = await self.client.request(method, self.path + suffix, headers=self.tenant.auth, **kwargs)
        assert response.status_code == expect, response.text
        return dict(response.json())

    async def read(self) -> dict[str, Any]:
        return dict((await self.call("GET"))["subscription"])

    async def events(self, state: str | None = None) -> list[dict[str, Any]]:
        params = {"limit": 200, **({"state": state} if state else {})}
        return list((await self.call("GET", "/events", params=params))["events"])

    async def by_key(self) -> dict[str, dict[str, Any]]:
        return {e["eventId"]: e for e in await self.events()}

    async def event(self, event_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The event and its attempts, newest first (getEvent)."""
        body = await self.call("GET", f"/events/{event_id}")
        return dict(body["event"]), list(body["attempts"])

    async def redeliver(self, event_id: str) -> dict[str, Any]:
        return dict((await self.call("POST", f"/events/{event_id}/redeliver", expect=202))["event"])

    async def rotate(self) -> str:
        return str((await self.call("POST", "/rotate-signing-secret"))["signingSecret"])

    async def patch(self, **body: Any) -> dict[str, Any]:
        return dict((await self.call("PATCH", json=body))["subscription"])

    async def settled(self, count: int, state: str = "delivered", timeout: float = 20) -> list[dict[str, Any]]:
        """Wait until `count` events are in `state`; returns them."""
        async def check() -> list[dict[str, Any]] | None:
            found = await self.events(state)
            return found if len(found) >= count else None

        return await until(check, timeout, f"{count} {state} events of {self.id}")


async def subscribe(client: httpx.AsyncClient, tenant: Tenant, webhook_url: str, ids: str, **body: Any) -> Sub:
    """A trigger returning `ids`, and a subscription to it polled every second whose first poll
    delivers (backfillSince), made through the API."""
    made = await client.post(create_path("", tenant.integration_id),
                             json={**IDS_TRIGGER, "name": f"Id Lister {uuid.uuid4().hex[:8]}"}, headers=tenant.auth)
    assert made.status_code == 201, made.text
    trigger_id, slug = made.json()["trigger"]["id"], made.json()["trigger"]["slug"]
    response = await client.post(
        subscriptions_path("", tenant.integration_id, trigger_id),
        json={"inputs": {"ids": ids}, "webhookUrl": webhook_url, "intervalSeconds": 1, "backfillSince": BACKFILL,
              **body},
        headers=tenant.auth,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["signingSecret"].startswith("whsec_")
    return Sub(client, tenant, trigger_id, slug, created["subscription"]["id"], created["signingSecret"])


def _db_id(engine: Any, value: str | uuid.UUID) -> Any:
    # SQLAlchemy's Uuid type stores 32 hex digits on SQLite; Postgres has a native uuid.
    value = value if isinstance(value, uuid.UUID) else uuid.UUID(value)
    return value.hex if engine.dialect.name == "sqlite" else value


async def next_attempt_in(engine: Any, event_id: str) -> timedelta | None:
    """The event row's next_attempt_at minus its last attempt's time (None when nothing is due)."""
    async with engine.connect() as conn:
        row = (await conn.execute(text(
            "SELECT e.next_attempt_at, max(a.attempted_at) AS last FROM trigger_events e "
            "JOIN delivery_attempts a ON a.event_id = e.id WHERE e.id = :id GROUP BY e.next_attempt_at"),
            {"id": event_id})).first()
    assert row is not None, event_id
    return None if row.next_attempt_at is None else row.next_attempt_at - row.last


async def drop_workspace_subscriptions(engine: Any, workspace_id: uuid.UUID) -> None:
    """Delete a test's subscriptions (their events and attempts cascade), so that the module's
    worker does not go on polling them or retrying their events in later tests."""
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM subscriptions WHERE workspace_id = :ws"),
                           {"ws": _db_id(engine, workspace_id)})
