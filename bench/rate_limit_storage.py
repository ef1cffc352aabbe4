"""Does counting rate limits through Redis with a synchronous client stall the event loop?

Compares, on one event loop, what one API request costs the rate limiter (a hit and a read of
the window: the numbers behind the `RateLimit` header):

- sync:  what slowapi does, `limits.storage.RedisStorage` + `limits.strategies` (blocking redis-py;
         slowapi's Limiter builds exactly these from its `storage_uri` and calls them inline);
- async: `limits.aio.storage.RedisStorage` (redis.asyncio) + `limits.aio.strategies`.

For each, CONCURRENCY tasks share REQUESTS requests while a ticker task asks to wake every
millisecond; how late it wakes is the event-loop lag every other request on the worker suffers.
Redis is measured directly and through a proxy (in another process) that adds a network delay,
as a Redis in another host or zone would.

    .venv/bin/python bench/rate_limit_storage.py [--redis redis://127.0.0.1:6379/0] [--delay-ms 0.5]
"""

import argparse
import asyncio
import multiprocessing
import socket
import statistics
import time
import uuid
from urllib.parse import urlsplit

from limits import RateLimitItemPerMinute
from limits.aio.storage import RedisStorage as AsyncRedisStorage
from limits.aio.strategies import MovingWindowRateLimiter as AsyncMovingWindow
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter as SyncMovingWindow

REQUESTS = 2000
CONCURRENCY = 50
RATE = 150
SECONDS = 3
LIMIT = RateLimitItemPerMinute(1_000_000)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_proxy(listen_port: int, target: tuple[str, int], delay: float) -> None:
    """A TCP proxy that holds every chunk for `delay` seconds in each direction."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await asyncio.sleep(delay)
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*target)
        await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class LagProbe:
    """Asks to wake every millisecond and records how late each wake-up is."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            self.lags.append(time.perf_counter() - start - 0.001)

    def __enter__(self) -> "LagProbe":
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()

    def summary(self) -> str:
        lags = sorted(self.lags) or [0.0]
        p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
        return f"loop lag p50 {statistics.median(lags) * 1e3:6.2f} ms  p99 {p99 * 1e3:6.2f} ms  max {lags[-1] * 1e3:6.2f} ms"


async def _saturate(one_request) -> float:  # type: ignore[no-untyped-def]
    """Closed loop: CONCURRENCY tasks issue REQUESTS requests back to back; returns requests/s."""
    queue = iter(range(REQUESTS))

    async def worker() -> None:
        for i in queue:
            await one_request(f"ws-{i % 100}")

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return REQUESTS / (time.perf_counter() - start)


async def _steady(one_request) -> LagProbe:  # type: ignore[no-untyped-def]
    """Open loop: RATE requests/s for SECONDS, as a moderately busy worker sees them."""
    tasks = []
    with LagProbe() as probe:
        start = time.perf_counter()
        for i in range(int(RATE * SECONDS)):
            await asyncio.sleep(max(0.0, start + i / RATE - time.perf_counter()))
            tasks.append(asyncio.create_task(one_request(f"ws-{i % 100}")))
        await asyncio.gather(*tasks)
        await asyncio.sleep(0.01)  # let the probe record the wake-up it was waiting for
    return probe


async def _measure(name: str, one_request) -> str:  # type: ignore[no-untyped-def]
    await one_request("warm-up")
    rate = await _saturate(one_request)
    probe = await _steady(one_request)
    return f"{name} {rate:6.0f} req/s max | at {RATE} req/s: {probe.summary()}"


async def bench_sync(url: str, prefix: str) -> str:
    storage = storage_from_string(url, key_prefix=prefix)
    strategy = SyncMovingWindow(storage)

    async def one_request(key: str) -> None:
        # This is what slowapi does inside its (async) route wrapper: plain blocking calls.
        strategy.hit(LIMIT, key)
        strategy.get_window_stats(LIMIT, key)

    try:
        return await _measure("sync  (slowapi, limits.storage):  ", one_request)
    finally:
        storage.reset()


async def bench_async(url: str, prefix: str) -> str:
    storage = AsyncRedisStorage("async+" + url, implementation="redispy", key_prefix=prefix, max_connections=CONCURRENCY)
    strategy = AsyncMovingWindow(storage)

    async def one_request(key: str) -> None:
        await strategy.hit(LIMIT, key)
        await strategy.get_window_stats(LIMIT, key)

    try:
        return await _measure("async (limits.aio.storage):       ", one_request)
    finally:
        await storage.reset()


async def round_trip_ms(url: str) -> float:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url)
    try:
        samples = []
        for _ in range(200):
            start = time.perf_counter()
            await client.ping()
            samples.append(time.perf_counter() - start)
        return statistics.median(samples) * 1e3
    finally:
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--delay-ms", type=float, default=0.5, help="added in each direction by the proxy")
    args = parser.parse_args()

    parts = urlsplit(args.redis)
    port = _free_port()
    proxy = multiprocessing.Process(
        target=_run_proxy, args=(port, (parts.hostname, parts.port or 6379), args.delay_ms / 1000), daemon=True
    )
    proxy.start()
    time.sleep(0.5)
    delayed = parts._replace(netloc=f"127.0.0.1:{port}").geturl()
    print("Per request: one hit and one window read (moving window).")
    print(f"Max: {REQUESTS} requests from {CONCURRENCY} concurrent tasks. Lag: event loop at a steady {RATE} req/s.")
    try:
        for label, url in (("Redis direct (loopback)", args.redis),
                           (f"Redis behind a proxy adding {args.delay_ms:g} ms each way", delayed)):
            print(f"\n{label}: PING round trip {asyncio.run(round_trip_ms(url)):.2f} ms")
            prefix = f"bench-{uuid.uuid4().hex[:8]}"
            print("  " + asyncio.run(bench_sync(url, prefix)))
            print("  " + asyncio.run(bench_async(url, prefix)))
    finally:
        proxy.terminate()


if __name__ == "__main__":
    main()
