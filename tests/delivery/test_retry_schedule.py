"""The Standard Webhooks retry schedule, its jitter, and Retry-After floors."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from odeus_triggers.delivery.retry_schedule import (
    MAX_ATTEMPTS,
    RETRY_AFTER_CAP_S,
    SCHEDULE_S,
    delay_before_next,
    next_delay,
    retry_after_floor,
)

EXPECTED = [0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]


def test_the_schedule_is_the_standard_one():
    assert list(SCHEDULE_S) == EXPECTED and MAX_ATTEMPTS == 10
    assert 3 < sum(EXPECTED) / 86400 < 3.2  # "about 3 days"


@pytest.mark.parametrize("attempts_made", range(10))
def test_delays_stay_within_ten_percent(attempts_made):
    rng = random.Random(attempts_made)
    base = EXPECTED[attempts_made]
    delays = [next_delay(attempts_made, rng) for _ in range(200)]
    assert all(d is not None and base * 0.9 <= d <= base * 1.1 for d in delays)
    if base:
        assert len(set(delays)) > 100  # jittered, not constant


def test_after_the_tenth_attempt_the_event_fails():
    assert next_delay(10) is None and next_delay(11) is None
    assert delay_before_next(10, retry_after_s=60) is None
    assert next_delay(0) == 0


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_seconds_on_429_and_503(status):
    assert retry_after_floor({"Retry-After": "120"}, status) == 120
    assert retry_after_floor({"retry-after": " 7 "}, status) == 7
    assert retry_after_floor({"Retry-After": "86400"}, status) == RETRY_AFTER_CAP_S == 3600


def test_retry_after_http_date():
    now = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
    in_ten_minutes = format_datetime(now + timedelta(minutes=10), usegmt=True)
    assert retry_after_floor({"Retry-After": in_ten_minutes}, 503, now=now) == 600
    past = format_datetime(now - timedelta(minutes=10), usegmt=True)
    assert retry_after_floor({"Retry-After": past}, 503, now=now) == 0
    far = format_datetime(now + timedelta(days=2), usegmt=True)
    assert retry_after_floor({"Retry-After": far}, 429, now=now) == 3600


@pytest.mark.parametrize(
    ("headers", "status"),
    [({"Retry-After": "120"}, 500), ({"Retry-After": "120"}, 200), ({"Retry-After": "120"}, None),
     ({}, 429), ({"Retry-After": "soon"}, 429), ({"Retry-After": "-5"}, 503), ({"Retry-After": ""}, 503)],
)
def test_retry_after_ignored(headers, status):
    assert retry_after_floor(headers, status) is None


def test_floor_raises_the_schedule_and_the_schedule_goes_on():
    rng = random.Random(1)
    assert delay_before_next(1, retry_after_s=3600, rng=rng) == 3600  # 5 s step, floored at an hour
    later = delay_before_next(5, retry_after_s=3600, rng=rng)
    assert later is not None and later >= 18000 * 0.9  # a floor never shortens the schedule
    assert 4.5 <= (delay_before_next(1, rng=rng) or 0) <= 5.5
