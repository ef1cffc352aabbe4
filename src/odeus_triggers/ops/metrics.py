"""Prometheus metrics, in a registry of the app's own.

The default global registry would make a second app in the same process (the tests build many)
fail with "Duplicated timeseries". With several uvicorn workers, each worker counts in files under
PROMETHEUS_MULTIPROC_DIR and /metrics adds them up, whichever worker answers the scrape.
"""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, GCCollector, Histogram, PlatformCollector, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from .subscription_gauge import SubscriptionGauge

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"

HTTP_LABELS = ("method", "route", "status")
# Arbitrary methods would make unbounded label values; anything else is counted as "other".
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.requests = Counter(
            "odeus_http_requests", "HTTP requests answered.", HTTP_LABELS, registry=self.registry
        )
        self.latency = Histogram(
            "odeus_http_request_duration_seconds",
            "Time from the first byte of the request to the end of the response.",
            HTTP_LABELS,
            registry=self.registry,
        )
        self.triggers_created = Counter(
            "odeus_triggers_created", "Triggers created (idempotent replays excluded).", registry=self.registry
        )
        self.rate_limited = Counter(
            "odeus_rate_limited_requests",
            "Requests refused with 429 rate_limited, by the limit they exceeded (workspace or client address).",
            ("policy",),
            registry=self.registry,
        )
        # Read from the database, so the same in every worker: not one of the per-process files.
        self.subscriptions = SubscriptionGauge()
        self.registry.register(self.subscriptions)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = (method if method in KNOWN_METHODS else "other", route, str(status))
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition in the format the scraper asked for, and its content type."""
        registry = self.registry
        if os.environ.get(MULTIPROCESS_DIR):
            # Every worker's counts; the process_* and python_* series are per process, so left out.
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            registry.register(self.subscriptions)
        encoder, content_type = choose_encoder(accept or "")
        return encoder(registry), content_type


def share_between_workers() -> None:
    """Before uvicorn starts several workers: give them one PROMETHEUS_MULTIPROC_DIR, emptied.

    The workers are spawned, so they import prometheus_client after this and inherit the variable.
    """
    directory = os.environ.get(MULTIPROCESS_DIR)
    if directory:
        # Files left by an earlier run would add its counts to this one's.
        for stale in Path(directory).glob("*.db"):
            stale.unlink()
        return
    directory = tempfile.mkdtemp(prefix="odeus-metrics-")
    atexit.register(shutil.rmtree, directory, True)
    os.environ[MULTIPROCESS_DIR] = directory
