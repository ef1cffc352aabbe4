"""`odeus_subscriptions{status}` (RUNTIME.md, Processes > Metrics), on the API process's /metrics.

Counted at scrape time with one GROUP BY rather than tracked by every write, so that it stays
right whichever process changes a status. The answer is kept a few seconds, and one scrape at a
time asks, so that a storm of scrapes costs the database one query per interval. A failed query
keeps the last answer (the gauge is left out until there is one): /metrics never fails, nor waits
on the database longer than the time-out.
"""

import asyncio
import logging
import math
import time
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ..db.runtime_tables import Subscription
from ..db.sql import is_outage

log = logging.getLogger("odeus_triggers.ops")

STATUSES = ("active", "paused", "paused_errors", "disabled")
CACHE_S = 5.0
QUERY_TIMEOUT_S = 2.0

subscriptions: Table = Subscription.__table__  # type: ignore[assignment]


async def _count(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(subscriptions.c.status, func.count()).group_by(subscriptions.c.status))
        return {status: int(n) for status, n in rows}


class SubscriptionGauge:
    """A prometheus_client collector: `refresh` before rendering, `collect` from the cache."""

    def __init__(self, cache_s: float = CACHE_S) -> None:
        self.cache_s = cache_s
        self._counts: dict[str, int] | None = None
        self._asked_at = -math.inf
        self._lock = asyncio.Lock()

    def _fresh(self) -> bool:
        return time.monotonic() - self._asked_at < self.cache_s

    async def refresh(self, engine: AsyncEngine) -> None:
        if self._fresh():
            return
        async with self._lock:
            if self._fresh():  # another scrape asked while this one waited
                return
            try:
                counts = await asyncio.wait_for(_count(engine), QUERY_TIMEOUT_S)
            except Exception as exc:
                # The type only: driver messages can quote connection details.
                log.warning("counting subscriptions failed (%s): the last counts stay%s", type(exc).__name__,
                            "; the database is unreachable" if is_outage(exc) else "")
            else:
                # A status nobody holds is 0, not missing; one outside the contract is not exported.
                self._counts = {status: counts.get(status, 0) for status in STATUSES}
            finally:
                # A failure waits out the interval too: an outage must not cost every scrape a time-out.
                self._asked_at = time.monotonic()

    def collect(self) -> Iterator[Metric]:
        if self._counts is None:
            return
        family = GaugeMetricFamily("odeus_subscriptions", "Subscriptions by status.", labels=["status"])
        for status, n in self._counts.items():
            family.add_metric([status], n)
        yield family
