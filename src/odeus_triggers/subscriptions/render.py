"""A subscription as the API shows it."""

from datetime import datetime
from typing import Any

from ..timestamps import iso_ms, iso_z
from .input_values import shown
from .schemas import SubscriptionStatus


def _ms(value: datetime | None) -> str | None:
    return iso_ms(value) if value else None


def _iso(value: datetime | None) -> str | None:
    return iso_z(value) if value else None


def render(row: Any, names: list[tuple[str, datetime]]) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "integrationId": str(row.integration_id),
        "triggerId": str(row.trigger_id),
        "status": row.status,
        "inputs": shown(row.inputs, row.sealed_inputs),
        "secrets": [{"name": name, "updatedAt": iso_z(at)} for name, at in names],
        "webhookUrl": row.webhook_url,
        "intervalSeconds": row.interval_seconds,
        "lastPollTime": _ms(row.last_poll_time),
        "nextPollAt": _iso(row.next_poll_at) if row.status == SubscriptionStatus.ACTIVE else None,
        "lastPolledAt": _iso(row.last_polled_at),
        "lastSucceededAt": _iso(row.last_succeeded_at),
        "consecutiveFailures": row.consecutive_failures,
        "lastError": row.last_error,
        "pausedReason": row.paused_reason,
        "createdAt": iso_z(row.created_at),
        "updatedAt": iso_z(row.updated_at),
    }
