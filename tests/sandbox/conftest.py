"""Fixtures for the polling sandbox: pools with short limits (the fake upstream is in the root conftest)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio

from odeus_triggers.sandbox import Fetcher, SandboxLimits, SandboxPool


@pytest_asyncio.fixture
async def make_pool() -> AsyncIterator[Callable[..., object]]:
    """Factory for started pools (wall time 2 s unless overridden); all are closed afterwards."""
    pools: list[SandboxPool] = []

    async def factory(*, fetcher_factory: Callable[[SandboxLimits], Fetcher] | None = None, **overrides) -> SandboxPool:
        limits = SandboxLimits(**{"wall_time_s": 2.0, **overrides})
        fetcher = fetcher_factory(limits) if fetcher_factory else None
        pool = SandboxPool(limits, fetcher=fetcher)
        pools.append(pool)
        await pool.start()
        return pool

    yield factory
    for pool in pools:
        await pool.close()


@pytest_asyncio.fixture
async def pool(make_pool) -> SandboxPool:
    return await make_pool()


@pytest_asyncio.fixture
async def dev_pool(make_pool) -> SandboxPool:
    """allow_private_network=True, so scripts can reach the local fake API."""
    return await make_pool(allow_private_network=True)


@pytest.fixture
def run_code(pool):
    """Run code with empty inputs on the default pool."""

    async def runner(code: str, **kwargs):
        kwargs.setdefault("inputs", {})
        kwargs.setdefault("secrets", {})
        kwargs.setdefault("last_poll_time", None)
        return await pool.run(code, **kwargs)

    return runner
