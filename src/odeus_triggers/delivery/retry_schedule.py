"""When the next attempt of an event is due: the Standard Webhooks schedule, and Retry-After."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# Seconds before attempt n+1; attempt 1 goes at once. Ten attempts over about three days.
SCHEDULE_S: tuple[float, ...] = (0, 5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 14 * 3600, 20 * 3600, 24 * 3600)
MAX_ATTEMPTS = len(SCHEDULE_S)
JITTER = 0.10
RETRY_AFTER_CAP_S = 3600.0
_RETRY_AFTER_STATUSES = frozenset({429, 503})


def next_delay(attempts_made: int, rng: random.Random | None = None) -> float | None:
    """Seconds until the next attempt after `attempts_made` attempts, or None: the event failed."""
    if attempts_made >= MAX_ATTEMPTS:
        return None
    base = SCHEDULE_S[max(attempts_made, 0)]
    # Jitter spreads the retries of events that failed together (a receiver's outage).
    return base * (rng or random).uniform(1 - JITTER, 1 + JITTER)


def retry_after_floor(headers: Mapping[str, str], status: int | None, now: datetime | None = None) -> float | None:
    """The earliest next attempt a 429 or 503 asked for, in seconds, at most an hour; else None."""
    if status not in _RETRY_AFTER_STATUSES:
        return None
    value = _header(headers, "retry-after")
    if value is None:
        return None
    value = value.strip()
    seconds: float
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # an HTTP-date is GMT; "-0000" parses as naive
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_S)


def delay_before_next(
    attempts_made: int, retry_after_s: float | None = None, rng: random.Random | None = None, scale: float = 1.0
) -> float | None:
    """The schedule's delay (times `scale`, which tests lower) raised to the receiver's floor; None
    once the attempts are used up."""
    delay = next_delay(attempts_made, rng)
    if delay is None:
        return None
    delay *= scale
    return delay if retry_after_s is None else max(delay, retry_after_s)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    # A plain dict is case-sensitive; httpx.Headers is not.
    return next((v for k, v in headers.items() if k.lower() == name), None)
