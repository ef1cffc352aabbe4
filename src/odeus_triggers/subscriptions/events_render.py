"""Events and delivery attempts as the API shows them."""

import json
from typing import Any

from ..timestamps import iso_ms


def render_event(row: Any) -> dict[str, Any]:
    # The body is the webhook's exact bytes, its event already redacted when it was built.
    data = json.loads(row.body)["data"] if row.body is not None else None
    return {
        "id": row.id,
        "eventId": row.event_key,
        "state": row.state,
        "attempts": row.attempts,
        "lastStatus": row.last_status,
        "lastError": row.last_error,
        "firstSeenAt": iso_ms(row.first_seen_at),
        "deliveredAt": iso_ms(row.delivered_at) if row.delivered_at is not None else None,
        "data": data,
    }


def render_attempt(row: Any) -> dict[str, Any]:
    return {
        "at": iso_ms(row.attempted_at),
        "status": row.status,
        "durationMs": round(row.duration_ms, 1),
        "error": row.error,
    }
