"""Rate limits across processes: two uvicorn workers share one limit through Redis, each counts
on its own when Redis is unreachable, and counting returns to Redis when it comes back."""

import asyncio
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from odeus_triggers.ratelimit.counter import RateCounter
from odeus_triggers.ratelimit.policies import Policies

from support.helpers import TEST_ENCRYPTION_KEY, create_path, make_tenant

REDIS_SERVER = shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _remaining(response: httpx.Response) -> int:
    match = re.search(r";r=(\d+);", response.headers["ratelimit"])
    assert match, response.headers["ratelimit"]
    return int(match[1])


def _serve(env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`odeus-triggers serve --workers 2`, returned once both workers have started their app."""
    port = _free_port()
    script = Path(sys.executable).with_name("odeus-triggers")
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(script), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    origin = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    with httpx.Client(trust_env=False, timeout=2) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"the service exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            # The first worker answers while the second may still be importing the app.
            if log_path.read_text().count("Application startup complete") >= 2:
                try:
                    if client.get(f"{origin}/healthz").status_code == 200:
                        return process, origin
                except httpx.TransportError:
                    pass
            time.sleep(0.2)
    process.terminate()
    pytest.fail(f"the service did not answer within 60 s:\n{log_path.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def _burst(origin: str, path: str, auth: dict[str, str], count: int) -> list[httpx.Response]:
    """`count` creates, each on a new connection, so that the two workers' accept loops share them."""
    responses = []
    for i in range(count):
        with httpx.Client(trust_env=False, timeout=10) as client:
            responses.append(client.post(f"{origin}{path}", json={"name": f"W{i} {uuid.uuid4().hex[:6]}"}, headers=auth))
    return responses


@pytest.fixture
def service_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODEUS_") and k != "REDIS_URL"}
    env.update(DATABASE_URL=database_url, ODEUS_ENCRYPTION_KEYS=TEST_ENCRYPTION_KEY,
               ODEUS_LOG_LEVEL="INFO", ODEUS_RATE_LIMIT="10/minute",
               ODEUS_RATE_LIMIT_UNAUTHENTICATED="100000/minute")
    return env


async def test_two_workers_share_one_limit_through_redis(app, service_env, redis_url, redis_prefix, tmp_path):
    tenant = await make_tenant(app)
    env = {**service_env, "REDIS_URL": redis_url, "ODEUS_RATE_LIMIT_KEY_PREFIX": redis_prefix}
    process, origin = _serve(env, tmp_path / "service.log")
    try:
        responses = await asyncio.to_thread(_burst, origin, create_path("", tenant.integration_id), tenant.auth, 14)
    finally:
        _stop(process)
    assert [r.status_code for r in responses] == [201] * 10 + [429] * 4, (tmp_path / "service.log").read_text()[-3000:]
    assert [_remaining(r) for r in responses[:10]] == list(range(9, -1, -1))
    assert all(r.headers["retry-after"].isdigit() for r in responses[10:])


async def test_without_redis_each_worker_counts_on_its_own(app, service_env, tmp_path):
    """The control for the test above: it shows that the burst really reaches both workers."""
    tenant = await make_tenant(app)
    env = {**service_env, "REDIS_URL": f"redis://127.0.0.1:{_free_port()}/0"}
    process, origin = _serve(env, tmp_path / "service.log")
    try:
        responses = await asyncio.to_thread(_burst, origin, create_path("", tenant.integration_id), tenant.auth, 24)
    finally:
        _stop(process)
    log = (tmp_path / "service.log").read_text()
    served = [r for r in responses if r.status_code == 201]
    assert all(r.status_code in (201, 429) and "ratelimit" in r.headers for r in responses)
    assert len(served) > 10, f"all requests reached one worker: {[r.headers['ratelimit'] for r in responses]}"
    assert log.count("Redis is unreachable for rate limiting") == 2, log[-3000:]


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A throwaway redis-server of this test's own, which the test may stop and start again."""
    if REDIS_SERVER is None:
        pytest.fail("redis-server is not installed (apt-get install -y redis-server)", pytrace=False)
    port = _free_port()
    server: dict[str, Any] = {"url": f"redis://127.0.0.1:{port}/0", "process": None}

    def start() -> None:
        server["process"] = subprocess.Popen(
            [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(tmp_path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        pytest.fail("redis-server did not start")

    def stop() -> None:
        server["process"].terminate()
        server["process"].wait(timeout=10)

    server.update(start=start, stop=stop)
    start()
    try:
        yield server
    finally:
        if server["process"].poll() is None:
            stop()


async def test_counting_falls_back_while_redis_is_down_and_returns_to_it(own_redis, caplog):
    caplog.set_level(logging.INFO, logger="odeus_triggers.ratelimit")
    policy = Policies.from_strings("100/minute", "1/minute").workspace
    one = RateCounter(own_redis["url"], "recovery", retry_seconds=0.2)
    two = RateCounter(own_redis["url"], "recovery", retry_seconds=0.2)
    await one.start()
    await two.start()
    try:
        assert (await one.hit(policy, "ws")).remaining == 99
        assert (await two.hit(policy, "ws")).remaining == 98

        own_redis["stop"]()
        outcomes = [await one.hit(policy, "ws") for _ in range(5)]
        assert all(o.allowed for o in outcomes) and not one.shared
        assert [o.remaining for o in outcomes] == [99, 98, 97, 96, 95]  # this process's own count

        own_redis["start"]()  # empty: it kept nothing
        await asyncio.sleep(0.3)
        assert (await one.hit(policy, "ws")).remaining == 99 and one.shared
        assert (await two.hit(policy, "ws")).remaining == 98 and two.shared
    finally:
        await one.aclose()
        await two.aclose()
    messages = [r.getMessage() for r in caplog.records if r.name == "odeus_triggers.ratelimit"]
    # One warning for the outage, not one per request; `two` only ever met the restarted Redis,
    # whose dead pooled connection it replaced without noticing an outage.
    assert sum("unreachable" in m for m in messages) == 1, messages
    assert sum("reachable again" in m for m in messages) == 1, messages
