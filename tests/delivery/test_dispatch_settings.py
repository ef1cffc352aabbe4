"""The settings that the dispatcher tests run the worker with: ODEUS_DELIVERY_TIMEOUT_SECONDS and
ODEUS_DELIVERY_RETRY_SCALE (which only shortens the schedule, never a receiver's Retry-After)."""

import random

import pytest
from pydantic import ValidationError

from odeus_triggers.config import Settings
from odeus_triggers.delivery.retry_schedule import JITTER, SCHEDULE_S, delay_before_next


def test_the_defaults_are_the_contracts_15_s_and_unscaled_schedule(monkeypatch):
    monkeypatch.delenv("ODEUS_DELIVERY_TIMEOUT_SECONDS", raising=False)
    monkeypatch.delenv("ODEUS_DELIVERY_RETRY_SCALE", raising=False)
    settings = Settings()
    assert (settings.delivery_timeout_seconds, settings.delivery_retry_scale) == (15.0, 1.0)


def test_they_are_read_from_the_environment_and_checked(monkeypatch):
    monkeypatch.setenv("ODEUS_DELIVERY_TIMEOUT_SECONDS", "2.5")
    monkeypatch.setenv("ODEUS_DELIVERY_RETRY_SCALE", "0.01")
    settings = Settings()
    assert (settings.delivery_timeout_seconds, settings.delivery_retry_scale) == (2.5, 0.01)
    for name, bad in (("ODEUS_DELIVERY_TIMEOUT_SECONDS", "0"), ("ODEUS_DELIVERY_TIMEOUT_SECONDS", "121"),
                      ("ODEUS_DELIVERY_RETRY_SCALE", "0"), ("ODEUS_DELIVERY_RETRY_SCALE", "-1"),
                      ("ODEUS_DELIVERY_RETRY_SCALE", "2")):
        monkeypatch.setenv(name, bad)
        with pytest.raises(ValidationError):
            Settings()
        monkeypatch.delenv(name)


def test_the_scale_shortens_the_schedule_but_not_a_retry_after_floor():
    for made in range(1, len(SCHEDULE_S)):
        scaled = delay_before_next(made, rng=random.Random(made), scale=0.01)
        assert scaled == pytest.approx(delay_before_next(made, rng=random.Random(made)) * 0.01)
        assert SCHEDULE_S[made] * 0.01 * (1 - JITTER) <= scaled <= SCHEDULE_S[made] * 0.01 * (1 + JITTER)
    assert delay_before_next(1, retry_after_s=7, scale=0.01) == 7
    assert delay_before_next(2, retry_after_s=1, scale=0.01) == pytest.approx(3, rel=JITTER)
    assert delay_before_next(len(SCHEDULE_S), retry_after_s=7, scale=0.01) is None  # the schedule is used up
