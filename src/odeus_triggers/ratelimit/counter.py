"""Counting requests against a policy: through Redis when configured, else in process.

Counting uses the asyncio API of `limits` (`limits.aio`), not slowapi's synchronous storage: a
blocking Redis call stalls every request on the worker for a full round trip (measured in
`bench/rate_limit_storage.py`). The strategy is the moving window: at most `q` requests in any
`w` seconds, with no burst of twice the quota across a fixed window's boundary.

When Redis fails, counting continues in process (each worker on its own), one warning is logged
for the outage, and Redis is tried again every `retry_seconds` by a single request, so a Redis
that hangs rather than refuses delays one request per retry period, never every request.
"""

import logging
import time
from collections.abc import Awaitable, Callable

import redis.asyncio
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from .policies import Outcome, Policy

log = logging.getLogger("odeus_triggers.ratelimit")

# A healthy Redis answers in about a millisecond; waiting longer only delays the fallback.
REDIS_TIMEOUT_SECONDS = 0.25
REDIS_MAX_CONNECTIONS = 64
_REDIS_FAILURES = (StorageError, redis.RedisError, OSError, TimeoutError)


class RateCounter:
    def __init__(self, redis_url: str | None, key_prefix: str, retry_seconds: float = 5.0) -> None:
        self._memory = MovingWindowRateLimiter(MemoryStorage())
        self._client: redis.asyncio.Redis | None = None
        self._redis: MovingWindowRateLimiter | None = None
        if redis_url:
            pool = redis.asyncio.BlockingConnectionPool.from_url(
                redis_url,
                max_connections=REDIS_MAX_CONNECTIONS,
                timeout=REDIS_TIMEOUT_SECONDS,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                # One immediate retry, on a new connection: after Redis restarts, every pooled
                # connection is dead, and that alone must not count as an outage.
                retry=Retry(NoBackoff(), 1),
            )
            storage = RedisStorage(
                "async+redis://",
                implementation="redispy",
                key_prefix=key_prefix,
                wrap_exceptions=True,
                # limits types **options as float | str | bool, yet hands them all to redis-py's
                # client, which takes the pool.
                connection_pool=pool,  # type: ignore[arg-type]
            )
            self._client = redis.asyncio.Redis(connection_pool=pool)
            self._redis = MovingWindowRateLimiter(storage)
        self.retry_seconds = retry_seconds
        self._outage = False
        self._retry_at = 0.0
        self._probing = False

    @property
    def shared(self) -> bool:
        """True while counts go through Redis, so that all workers and replicas share them."""
        return self._redis is not None and not self._outage

    async def start(self) -> None:
        if self._client is not None:
            try:
                await self._client.ping()
            except _REDIS_FAILURES as exc:
                self._enter_outage(exc)
            else:
                log.info("rate limits are counted in Redis, shared by all workers")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.connection_pool.disconnect()

    async def hit(self, policy: Policy, key: str) -> Outcome:
        """Counts one request against `key` under `policy`, unless that would exceed the quota."""

        async def hit(counter: MovingWindowRateLimiter) -> Outcome:
            allowed = await counter.hit(policy.item, policy.name, key)
            return Outcome.of(policy, allowed, await counter.get_window_stats(policy.item, policy.name, key))

        return await self._count(hit)

    async def peek(self, policy: Policy, key: str) -> Outcome:
        """Where `key` stands under `policy`, without counting a request."""

        async def peek(counter: MovingWindowRateLimiter) -> Outcome:
            stats = await counter.get_window_stats(policy.item, policy.name, key)
            return Outcome.of(policy, stats.remaining > 0, stats)

        return await self._count(peek)

    async def _count(self, operation: Callable[[MovingWindowRateLimiter], Awaitable[Outcome]]) -> Outcome:
        if self._redis is not None and self._may_use_redis():
            probe = self._outage
            try:
                outcome = await operation(self._redis)
            except _REDIS_FAILURES as exc:
                self._enter_outage(exc)
            else:
                # Only a probe ends an outage: a request that reached Redis just before it failed
                # proves nothing about now.
                if probe:
                    self._leave_outage()
                return outcome
            finally:
                if probe:
                    self._probing = False
        return await operation(self._memory)

    def _may_use_redis(self) -> bool:
        if not self._outage:
            return True
        if self._probing or time.monotonic() < self._retry_at:
            return False
        self._probing = True
        return True

    def _enter_outage(self, exc: BaseException) -> None:
        self._retry_at = time.monotonic() + self.retry_seconds
        if not self._outage:
            self._outage = True
            # The URL is not logged: it may carry a password.
            log.warning(
                "Redis is unreachable for rate limiting (%s: %s); counting in process, per worker, "
                "until it returns",
                type(exc.__cause__ or exc).__name__,
                exc.__cause__ or exc,
            )

    def _leave_outage(self) -> None:
        if self._outage:
            self._outage = False
            log.info("Redis is reachable again; rate limits are shared through it once more")

