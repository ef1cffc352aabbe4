"""The scheduler's and the dispatcher's Prometheus metrics (RUNTIME.md, "Metrics"), as a `PollObserver` and a `DeliveryObserver`.

They take a registry rather than the global one: the API process (embedded mode) and a worker
each expose their own, and the tests build many of both in one process.
"""

from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

# Polls run from milliseconds (`return [];`) up to the sandbox's wall time (at most 120 s).
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
# The lag goal is p99 ≤ 2 s; the long tail shows a backlog or leases run out after a crash.
_LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900)


class PollMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.polls = Counter("odeus_polls", "Polls finished, by outcome.", ("outcome",), registry=registry)
        self.duration = Histogram(
            "odeus_poll_duration_seconds", "Time a poll took, from loading the subscription to its commit.",
            buckets=_DURATION_BUCKETS, registry=registry,
        )
        self.lag = Histogram(
            "odeus_poll_lag_seconds", "Start of a poll minus the time it was due.",
            buckets=_LAG_BUCKETS, registry=registry,
        )
        self.events = Counter(
            "odeus_events", "Events returned by polls, by kind: seen (every one returned), new, seeded.",
            ("kind",), registry=registry,
        )

    def polled(self, run: dict[str, Any], lag_s: float | None, seen: int, new: int, seeded: int) -> None:
        self.polls.labels(str(run["outcome"])).inc()
        self.duration.observe(float(run["duration_ms"]) / 1000)
        if lag_s is not None:
            # A poll-now is "due" when it is asked for; clock skew can never make the lag negative.
            self.lag.observe(max(lag_s, 0.0))
        for kind, count in (("seen", seen), ("new", new), ("seeded", seeded)):
            if count:
                self.events.labels(kind).inc(count)


# A 2xx usually follows the poll's commit within a second; the tail is retries, up to days.
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200, 86_400)


class DeliveryMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter(
            "odeus_deliveries", "Delivery attempts, by outcome: delivered, failed, gone (410).", ("outcome",),
            registry=registry,
        )
        self.latency = Histogram(
            "odeus_delivery_latency_seconds",
            "From the start of the poll that found an event (its commit follows within the poll) to its 2xx.",
            buckets=_LATENCY_BUCKETS, registry=registry,
        )

    def delivered(self, event: Any, outcome: Any, at: datetime) -> None:
        self.deliveries.labels(outcome.kind).inc()
        if outcome.kind == "delivered":
            self.latency.observe(max((at - event.first_seen_at).total_seconds() + outcome.duration_ms / 1000, 0.0))
