"""Helpers of the runtime tests: real `odeus-triggers worker` and `serve` processes, and what the
database holds about one subscription's polls."""

import os
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
from sqlalchemy import text

from support.helpers import TEST_ENCRYPTION_KEY, cli_command, free_port

T = TypeVar("T")

# The input `ids` lists the ids the code returns, so that a test decides when new ones appear.
IDS_TRIGGER: dict[str, Any] = {
    "name": "Id Lister",
    "inputFields": [{"label": "Ids", "type": "TEXT", "required": True}],
    "pollingCode": "return inputs.ids.split(',').map(id => ({id, title: 'item ' + id}));",
}


def process_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a spawned service process: no ODEUS_ setting of this one leaks in."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ODEUS_") and k not in ("DATABASE_URL", "REDIS_URL")}
    env.update({"DATABASE_URL": database_url, "ODEUS_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY,
                "ODEUS_MIN_INTERVAL_SECONDS": "1", **extra})
    return env


def tail(path: Path, size: int = 3000) -> str:
    return path.read_bytes().decode(errors="replace")[-size:] if path.exists() else ""


def wait_for(check: Callable[[], T | None], timeout: float, what: str, log: Path | None = None,
             interval: float = 0.2) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s" + (f"\n{tail(log)}" if log else ""))
        time.sleep(interval)


async def until(check: Callable[[], Awaitable[T | None]], timeout: float, what: str, log: Path | None = None) -> T:
    """`wait_for` for checks that query the database through the test app's engine."""
    import asyncio

    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s" + (f"\n{tail(log)}" if log else ""))
        await asyncio.sleep(0.2)


class Worker:
    def __init__(self, process: subprocess.Popen[bytes], log: Path, metrics_port: int) -> None:
        self.process, self.log, self.metrics_port = process, log, metrics_port

    def get(self, path: str) -> httpx.Response:
        with httpx.Client(trust_env=False, timeout=5) as client:
            return client.get(f"http://127.0.0.1:{self.metrics_port}{path}")

    def terminate(self, timeout: float) -> tuple[int, float]:
        """SIGTERM; the exit code and the seconds it took to exit."""
        began = time.monotonic()
        self.process.terminate()
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
            raise AssertionError(f"the worker did not exit within {timeout:.0f} s of SIGTERM\n{tail(self.log)}") from None
        return code, time.monotonic() - began


@contextmanager
def worker_process(env: dict[str, str], log: Path, *args: str) -> Iterator[Worker]:
    """A real `odeus-triggers worker`, answering on its metrics port; killed if still running."""
    port = free_port()
    with open(log, "ab") as out:
        process = subprocess.Popen(cli_command("worker", "--metrics-port", str(port), "--metrics-host", "127.0.0.1",
                                               *args), env=env, stdout=out, stderr=subprocess.STDOUT)
    worker = Worker(process, log, port)
    try:
        def answers() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"the worker exited with {process.returncode}\n{tail(log)}")
            try:
                return worker.get("/healthz").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(answers, 30, "the worker's /healthz", log)
        yield worker
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def bootstrap(env: dict[str, str]) -> dict[str, str]:
    """`migrate` then `bootstrap --json` on the database of `env`: a workspace, key and integration."""
    import json

    for args in (("migrate",), ("bootstrap", "--json")):
        done = subprocess.run(cli_command(*args), env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def db_id(engine: Any, subscription_id: str) -> Any:
    # SQLAlchemy's Uuid type stores 32 hex digits on SQLite; Postgres has a native uuid.
    return uuid.UUID(subscription_id).hex if engine.dialect.name == "sqlite" else uuid.UUID(subscription_id)


async def poll_runs(engine: Any, subscription_id: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT outcome, returned, new, started_at, finished_at FROM poll_runs WHERE subscription_id = :id "
                 "ORDER BY started_at, finished_at"), {"id": db_id(engine, subscription_id)})
        return [dict(r) for r in rows.mappings()]


async def stored_events(engine: Any, subscription_id: str) -> list[tuple[str, str]]:
    """(event_key, state) of every event row of the subscription, sorted."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT event_key, state FROM trigger_events WHERE subscription_id = :id ORDER BY event_key, state"),
            {"id": db_id(engine, subscription_id)})
        return [(k, s) for k, s in rows]


async def lease_held(engine: Any, subscription_id: str) -> bool:
    async with engine.connect() as conn:
        value = await conn.scalar(text("SELECT lease_expires_at FROM subscriptions WHERE id = :id"),
                                  {"id": db_id(engine, subscription_id)})
        return value is not None


async def pause_all(engine: Any, workspace_id: uuid.UUID) -> None:
    """Pause a test's subscriptions: polled every second, they must not burden the workers of later tests."""
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE subscriptions SET status = 'paused' WHERE workspace_id = :ws"),
                           {"ws": workspace_id.hex if engine.dialect.name == "sqlite" else workspace_id})
