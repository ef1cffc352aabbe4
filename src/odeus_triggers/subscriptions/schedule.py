"""When a subscription is due next, and when failures pause it (RUNTIME.md, "Failures"). Pure
functions: the clock and the randomness are passed in."""

import random
from dataclasses import dataclass

JITTER = 0.10
BACKOFF_BASE_S = 30.0
BACKOFF_CAP_S = 30 * 60.0
PAUSE_AFTER_FAILURES = 20
PAUSE_AFTER_FAILING_S = 24 * 3600.0
PAUSE_AFTER_INVALID_OUTPUTS = 3


def jittered(seconds: float, rng: random.Random | None = None) -> float:
    """`seconds` ±10 %, so that subscriptions created together do not stay in step."""
    return seconds * (1 + (rng or random).uniform(-JITTER, JITTER))


def success_delay(interval_s: int, rng: random.Random | None = None) -> float:
    return jittered(interval_s, rng)


def failure_delay(interval_s: int, failures: int, rng: random.Random | None = None) -> float:
    """After the `failures`-th consecutive failure: max(interval, min(30 min, 30 s × 2^(failures−1)))."""
    backoff = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** min(max(failures - 1, 0), 16))
    return jittered(max(float(interval_s), backoff), rng)


@dataclass(frozen=True, slots=True)
class PauseRule:
    """What pauses a subscription for errors, written into the fenced update as SQL, so that it
    counts what is stored (a resume may have reset the counts meanwhile)."""

    failures: int = PAUSE_AFTER_FAILURES
    failing_s: float = PAUSE_AFTER_FAILING_S
    invalid_outputs: int = PAUSE_AFTER_INVALID_OUTPUTS
