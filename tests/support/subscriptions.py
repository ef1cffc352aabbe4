"""Helpers of the subscription route tests: a trigger with every kind of input, and its paths."""

import uuid
from typing import Any

import httpx
from sqlalchemy import text

from support.helpers import Tenant, create_path, trigger_path

# A public IP literal: accepted by the address guard without any DNS lookup.
WEBHOOK = "https://93.184.215.14/hooks/abc"
POLLING_CODE = "return [];"
PASSWORD_VALUE = "pw-plain-4f0c2b7e"

TRIGGER: dict[str, Any] = {
    "name": "Issue Poller",
    "pollingCode": POLLING_CODE,
    "inputFields": [
        {"label": "Project ID", "type": "TEXT", "required": True},
        {"label": "Priority", "type": "SELECT", "required": False,
         "options": [{"label": "High", "value": "high"}, {"label": "Low", "value": "low"}]},
        {"label": "Limit", "type": "NUMBER", "required": False},
        {"label": "Api Key", "type": "PASSWORD", "required": False},
    ],
}
INPUTS: dict[str, Any] = {"projectId": "proj_123", "priority": "high", "limit": 5}


def subscriptions_path(base: str, integration_id: str, trigger_id: str) -> str:
    return f"{trigger_path(base, integration_id, trigger_id)}/subscriptions"


def subscription_path(base: str, integration_id: str, trigger_id: str, subscription_id: str) -> str:
    return f"{subscriptions_path(base, integration_id, trigger_id)}/{subscription_id}"


async def create_trigger(client: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any] | None = None) -> str:
    """A new trigger of the tenant's integration (TRIGGER unless `body`); returns its id."""
    payload = dict(body or TRIGGER)
    payload["name"] = f"{payload['name']} {uuid.uuid4().hex[:8]}"
    response = await client.post(create_path("", tenant.integration_id), json=payload, headers=tenant.auth)
    assert response.status_code == 201, response.text
    return str(response.json()["trigger"]["id"])


def create_body(**changes: Any) -> dict[str, Any]:
    return {"inputs": dict(INPUTS), "webhookUrl": WEBHOOK, **changes}


async def subscribe(
    client: httpx.AsyncClient, tenant: Tenant, trigger_id: str, base: str = "", **changes: Any
) -> dict[str, Any]:
    """Create a subscription; returns the 201's body (`subscription` and `signingSecret`)."""
    response = await client.post(
        subscriptions_path(base, tenant.integration_id, trigger_id), json=create_body(**changes), headers=tenant.auth
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def listed(client: httpx.AsyncClient, tenant: Tenant, trigger_id: str) -> list[dict[str, Any]]:
    response = await client.get(subscriptions_path("", tenant.integration_id, trigger_id), headers=tenant.auth)
    assert response.status_code == 200, response.text
    return list(response.json()["subscriptions"])


async def fetched(client: httpx.AsyncClient, tenant: Tenant, trigger_id: str, subscription_id: str) -> dict[str, Any]:
    response = await client.get(
        subscription_path("", tenant.integration_id, trigger_id, subscription_id), headers=tenant.auth
    )
    assert response.status_code == 200, response.text
    return dict(response.json()["subscription"])


async def stored_row(app: Any, subscription_id: str) -> dict[str, Any] | None:
    """The subscription's row as the database holds it, or None."""
    async with app.state.engine.connect() as conn:
        row = (await conn.execute(
            text("SELECT * FROM subscriptions WHERE id = :id"), {"id": _db_id(app, subscription_id)}
        )).mappings().first()
    return dict(row) if row is not None else None


async def stored_secret_rows(app: Any, subscription_id: str) -> list[dict[str, Any]]:
    async with app.state.engine.connect() as conn:
        rows = (await conn.execute(
            text("SELECT * FROM subscription_secrets WHERE subscription_id = :id"),
            {"id": _db_id(app, subscription_id)},
        )).mappings().all()
    return [dict(r) for r in rows]


def _db_id(app: Any, subscription_id: str) -> Any:
    # SQLAlchemy's Uuid type stores 32 hex digits on SQLite; Postgres has a native uuid.
    if app.state.engine.dialect.name == "sqlite":
        return uuid.UUID(subscription_id).hex
    return uuid.UUID(subscription_id)


async def bump_lease_epoch(app: Any, subscription_id: str) -> None:
    """What a claim by another worker does to the row, once this one's lease has run out."""
    async with app.state.engine.begin() as conn:
        await conn.execute(
            text("UPDATE subscriptions SET lease_epoch = lease_epoch + 1 WHERE id = :id"),
            {"id": _db_id(app, subscription_id)},
        )


async def force_status(app: Any, subscription_id: str, status: str) -> None:
    """Put a subscription in a status that only the service itself sets (`disabled`, after a 410)."""
    async with app.state.engine.begin() as conn:
        await conn.execute(
            text("UPDATE subscriptions SET status = :status WHERE id = :id"),
            {"status": status, "id": _db_id(app, subscription_id)},
        )
