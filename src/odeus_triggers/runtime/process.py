"""The worker process (`odeus-triggers worker`), and the loops it shares with the API process
when the API embeds them (`serve` on SQLite, or `serve --with-worker`).

A worker checks the keyring as strictly as `serve` does, then runs the scheduler and the sweeps
on an engine and a sandbox pool of its own. `--metrics-port` serves `/metrics` and `/healthz`
with a few lines of asyncio, not a web framework. SIGTERM or SIGINT drains the scheduler
(`Scheduler.stop`), and the process exits 0.
"""

import asyncio
import logging
import signal
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.exposition import choose_encoder

from ..config import Settings
from ..db.engine import make_engine
from ..sandbox import SandboxPool
from ..sandbox.limits import poller_limits
from ..secretbox import Keyring, keyring_from_settings
from ..subscriptions.poll import PollDeps
from .dispatcher import Dispatcher
from .metrics import DeliveryMetrics, PollMetrics
from .scheduler import Scheduler
from .sweeper import Sweeper

log = logging.getLogger("odeus_triggers.runtime")

DEFAULT_CONCURRENCY = 50


@dataclass
class Runtime:
    """The scheduler, the dispatcher and the sweeps, over an engine, sandbox pool and keyring that
    the caller owns and closes after `stop()`."""

    scheduler: Scheduler
    dispatcher: Dispatcher
    sweeper: Sweeper
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def build(
        cls, settings: Settings, deps: PollDeps, concurrency: int = DEFAULT_CONCURRENCY,
        deliveries: DeliveryMetrics | None = None,
    ) -> "Runtime":
        scheduler = Scheduler(deps, concurrency=concurrency, wall_time_s=settings.polling_timeout_seconds)
        dispatcher = Dispatcher(
            deps.engine, deps.keyring, concurrency=settings.delivery_concurrency,
            per_host=settings.delivery_per_host, allow_private=settings.delivery_allow_private_network,
            observer=deliveries, timeout_s=settings.delivery_timeout_seconds,
            retry_scale=settings.delivery_retry_scale,
        )
        scheduler.on_new_events = dispatcher.wake
        return cls(scheduler, dispatcher, Sweeper(deps.engine, max_keys=settings.dedupe_max_keys))

    def start(self) -> None:
        self._tasks = [
            self.scheduler.start(), self.dispatcher.start(),
            asyncio.create_task(self.sweeper.run(), name="odeus-sweeper"),
        ]

    async def stop(self) -> None:
        """Both loops drain at once: the process is gone within the longer of their drains."""
        self.sweeper.stop()
        await asyncio.gather(self.scheduler.stop(), self.dispatcher.stop())
        await self.dispatcher.close()
        for task in self._tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def worker_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


_MAX_REQUEST_HEAD = 8192


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, registry: CollectorRegistry) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        if len(head) > _MAX_REQUEST_HEAD:
            raise ValueError("request head too large")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = (lines[0].split(" ") + ["", "", ""])[:3]
        accept = next((line.split(":", 1)[1].strip() for line in lines[1:]
                       if line.lower().startswith("accept:")), "")
        path = target.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            status, body, content_type = "405 Method Not Allowed", b"method not allowed\n", "text/plain"
        elif path == "/metrics":
            encoder, content_type = choose_encoder(accept)
            status, body = "200 OK", encoder(registry)
        elif path == "/healthz":
            status, body, content_type = "200 OK", b'{"status":"ok"}', "application/json"
        else:
            status, body, content_type = "404 Not Found", b"not found\n", "text/plain"
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\n".encode("latin-1")
            + (body if method != "HEAD" else b"")
        )
        await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> asyncio.Server:
    """`/metrics` and `/healthz`, one request per connection: all a scraper or a probe needs."""
    return await asyncio.start_server(lambda r, w: _answer(r, w, registry), host, port, limit=_MAX_REQUEST_HEAD)


async def _run(settings: Settings, keyring: Keyring, concurrency: int, metrics_port: int | None, host: str) -> None:
    engine = make_engine(settings, kind="worker")
    sandbox = SandboxPool(poller_limits(settings, concurrency))
    registry = worker_registry()
    deps = PollDeps(engine=engine, sandbox=sandbox, keyring=keyring, observer=PollMetrics(registry))
    runtime = Runtime.build(settings, deps, concurrency, DeliveryMetrics(registry))
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    server = await serve_metrics(registry, host, metrics_port) if metrics_port is not None else None
    try:
        runtime.start()
        log.info("worker started", extra={"concurrency": concurrency, "metrics_port": metrics_port})
        await stopping.wait()
        log.info("worker stopping: draining the polls in flight")
        await runtime.stop()
    finally:
        if server is not None:
            server.close()
        await sandbox.close()
        await engine.dispose()
    log.info("worker stopped")


def run_worker(settings: Settings, concurrency: int, metrics_port: int | None, host: str = "0.0.0.0") -> None:
    """The worker's entry: the strict keyring check first, so that a wrong key refuses to start."""
    from ..cli_secrets import check_keyring

    check_keyring(settings)
    asyncio.run(_run(settings, keyring_from_settings(settings), concurrency, metrics_port, host))
