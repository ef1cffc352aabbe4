"""Fair shares of the sandbox's run workers between tenants (workspaces, or subscribers).

A tenant runs at most `per_tenant` jobs at once; further jobs wait in that tenant's own queue,
and free workers go to the waiting tenants in turn (round robin), never first come first served
across tenants. So a tenant that floods the pool only lengthens its own queue, and another
tenant's job waits at most for one job per busy worker, never for the flood.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque

from .contracts import SandboxBusy, SandboxUnavailable, format_seconds


class FairGate:
    def __init__(self, capacity: int, per_tenant: int, max_queued_per_tenant: int) -> None:
        self._free = capacity
        self._per_tenant = per_tenant
        self._max_queued = max_queued_per_tenant
        self._active: dict[str, int] = {}
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}
        # Turns go to the waiting tenant served least recently; one with nothing running or
        # waiting is forgotten, and comes back first in line.
        self._clock = itertools.count()
        self._last_served: dict[str, int] = {}

    def active(self, tenant: str) -> int:
        return self._active.get(tenant, 0)

    def queued(self, tenant: str) -> int:
        return len(self._waiting.get(tenant, ()))

    async def acquire(self, tenant: str, timeout: float) -> None:
        if self._free > 0 and self.active(tenant) < self._per_tenant and not self.queued(tenant):
            self._grant(tenant)
            return
        if self.queued(tenant) >= self._max_queued:
            raise SandboxBusy(
                f"this workspace already has {self.active(tenant)} polling code runs in progress "
                f"and {self.queued(tenant)} waiting"
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(tenant, deque()).append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                # Granted just as the wait ended: hand the share on, not lose it.
                self.release(tenant)
            else:
                self._forget(tenant, waiter)
            if isinstance(exc, TimeoutError):
                message = f"no sandbox worker became free for this workspace within {format_seconds(timeout)}"
                # Waiting behind its own runs is the tenant's backlog; behind others', the pool's.
                if self.active(tenant) >= self._per_tenant:
                    raise SandboxBusy(message) from None
                raise SandboxUnavailable(message) from None
            raise

    def release(self, tenant: str) -> None:
        left = self._active.get(tenant, 0) - 1
        if left > 0:
            self._active[tenant] = left
        else:
            self._active.pop(tenant, None)
            if tenant not in self._waiting:
                self._last_served.pop(tenant, None)
        self._free += 1
        self._dispatch()

    def _grant(self, tenant: str) -> None:
        self._free -= 1
        self._active[tenant] = self._active.get(tenant, 0) + 1
        self._last_served[tenant] = next(self._clock)

    def _forget(self, tenant: str, waiter: asyncio.Future[None]) -> None:
        queue = self._waiting.get(tenant)
        if queue is None:
            return
        try:
            queue.remove(waiter)
        except ValueError:
            pass
        if not queue:
            del self._waiting[tenant]
            if tenant not in self._active:
                self._last_served.pop(tenant, None)

    def _dispatch(self) -> None:
        while self._free > 0:
            eligible = [t for t in self._waiting if self.active(t) < self._per_tenant]
            if not eligible:
                return
            tenant = min(eligible, key=lambda t: self._last_served.get(t, -1))
            queue = self._waiting[tenant]
            waiter = queue.popleft()
            if not queue:
                del self._waiting[tenant]
            if waiter.done():
                # Its wait was cancelled a moment ago; its own cleanup has not run yet.
                continue
            self._grant(tenant)
            waiter.set_result(None)
