"""The headers of one delivery attempt, signed per Standard Webhooks."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

from ..timestamps import as_utc

USER_AGENT = "odeus-triggers-webhooks/1"


def attempt_headers(
    event_id: str,
    body: str,
    secret: str,
    *,
    previous_secret: str | None = None,
    previous_until: datetime | None = None,
    now: datetime | None = None,
) -> dict[str, str]:
    """Headers for POSTing `body` (the stored bytes, unchanged) as event `event_id` at `now`.

    While a rotation's previous secret is still valid, both secrets sign, so a receiver that has
    not switched yet keeps verifying.
    """
    now = now or datetime.now(UTC)
    # The header carries whole seconds, and the signature must cover exactly what it carries.
    seconds = math.floor(now.timestamp())
    signed_at = datetime.fromtimestamp(seconds, UTC)
    signatures = [Webhook(secret).sign(event_id, signed_at, body)]
    if previous_secret and previous_until is not None and as_utc(previous_until) > signed_at:
        signatures.append(Webhook(previous_secret).sign(event_id, signed_at, body))
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(seconds),
        "webhook-signature": " ".join(signatures),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }

