"""Helpers of the poll tests: a trigger whose events the test controls through the inputs (or by
replacing its code), poll-now, the poll history, and the events as the database holds them."""

import json
import uuid
from typing import Any

import httpx
from sqlalchemy import text

from support.helpers import Tenant, trigger_path
from support.subscriptions import WEBHOOK, create_trigger, subscription_path, subscriptions_path

# `count` events, ids `item-<start>` to `item-<start + count - 1>`; each carries the lastPollTime it saw.
COUNTER_CODE = """
const start = inputs.start ?? 1;
const out = [];
for (let i = 0; i < (inputs.count ?? 0); i++) out.push({ id: "item-" + (start + i), lastPollTime });
return out;
"""
COUNTER_FIELDS: list[dict[str, Any]] = [
    {"label": "Count", "type": "NUMBER", "required": False},
    {"label": "Start", "type": "NUMBER", "required": False},
]
# Far in the future: nothing but the test's own poll-nows polls these subscriptions.
LONG_INTERVAL = 86_400


def counter_trigger(code: str = COUNTER_CODE, fields: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"name": "Counter", "pollingCode": code, "inputFields": COUNTER_FIELDS if fields is None else fields}


class Polled:
    """One subscription of a counter trigger, and the calls the tests make on it."""

    def __init__(self, client: httpx.AsyncClient, app: Any, tenant: Tenant, trigger_id: str, subscription: dict[str, Any]):
        self.client, self.app, self.tenant = client, app, tenant
        self.trigger_id, self.id = trigger_id, subscription["id"]
        self.path = subscription_path("", tenant.integration_id, trigger_id, self.id)

    async def poll_response(self) -> httpx.Response:
        return await self.client.post(self.path + "/poll", headers=self.tenant.auth)

    async def poll(self) -> dict[str, Any]:
        response = await self.poll_response()
        assert response.status_code == 200, response.text
        return dict(response.json()["poll"])

    async def read(self) -> dict[str, Any]:
        response = await self.client.get(self.path, headers=self.tenant.auth)
        assert response.status_code == 200, response.text
        return dict(response.json()["subscription"])

    async def patch(self, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.client.patch(self.path, json=body, headers=self.tenant.auth)
        assert response.status_code == 200, response.text
        return dict(response.json()["subscription"])

    async def set_count(self, count: int, start: int = 1) -> None:
        await self.patch({"inputs": {"count": count, "start": start}})

    async def set_code(self, code: str, fields: list[dict[str, Any]] | None = None) -> None:
        body = counter_trigger(code, fields)
        body["name"] = f"Counter {uuid.uuid4().hex[:8]}"
        response = await self.client.put(
            trigger_path("", self.tenant.integration_id, self.trigger_id), json=body, headers=self.tenant.auth
        )
        assert response.status_code == 200, response.text

    async def history(self, **params: Any) -> dict[str, Any]:
        response = await self.client.get(self.path + "/polls", params=params, headers=self.tenant.auth)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def events(self) -> dict[str, dict[str, Any]]:
        """The stored events by key: their state and, for those to deliver, the event's data."""
        db_id: Any = uuid.UUID(self.id)
        if self.app.state.engine.dialect.name == "sqlite":
            db_id = db_id.hex
        async with self.app.state.engine.connect() as conn:
            rows = (await conn.execute(
                text("SELECT event_key, state, body FROM trigger_events WHERE subscription_id = :id"), {"id": db_id}
            )).all()
        return {key: {"state": state, "data": json.loads(body)["data"] if body else None} for key, state, body in rows}


async def counter_subscription(
    client: httpx.AsyncClient, app: Any, tenant: Tenant, code: str = COUNTER_CODE,
    fields: list[dict[str, Any]] | None = None, inputs: dict[str, Any] | None = None, **body: Any,
) -> Polled:
    trigger_id = await create_trigger(client, tenant, counter_trigger(code, fields))
    payload = {"inputs": {} if inputs is None else inputs, "webhookUrl": WEBHOOK, "intervalSeconds": LONG_INTERVAL,
               **body}
    response = await client.post(
        subscriptions_path("", tenant.integration_id, trigger_id), json=payload, headers=tenant.auth
    )
    assert response.status_code == 201, response.text
    return Polled(client, app, tenant, trigger_id, response.json()["subscription"])


def states(events: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {key: e["state"] for key, e in events.items()}
