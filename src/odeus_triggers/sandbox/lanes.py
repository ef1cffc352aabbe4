"""Lanes: fixed sets of worker slots, one per kind of job; a dead worker is replaced off the job path."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import cast

from .channel import Worker
from .contracts import SandboxLimits, SandboxUnavailable, format_seconds

log = logging.getLogger(__name__)

# Fresh runtimes per job keep workers clean, but recycling bounds any slow
# leak in the interpreter or the extension.
MAX_JOBS_PER_WORKER = 500
# Waiting for a free worker is bounded by one run's wall time plus room for a
# killed worker's replacement to start, so a busy-but-healthy pool does not
# turn into errors just because a respawn is in flight.
ACQUIRE_GRACE_S = 1.0


class Slot:
    __slots__ = ("worker",)

    def __init__(self) -> None:
        self.worker: Worker | None = None


class Lane:
    """A fixed set of worker slots for one kind of job; a dead worker is replaced off the job path."""

    def __init__(self, name: str, size: int, limits: SandboxLimits) -> None:
        self.name = name
        self.limits = limits
        self.slots = [Slot() for _ in range(size)]
        self.idle: asyncio.Queue[Slot] = asyncio.Queue()
        self._refills: set[asyncio.Task] = set()
        self.closed = False

    async def start(self) -> None:
        spawned = await asyncio.gather(*(Worker.spawn(self.limits) for _ in self.slots), return_exceptions=True)
        failures = [w for w in spawned if isinstance(w, BaseException)]
        if failures:
            for w in spawned:
                if isinstance(w, Worker):
                    await w.kill()
            raise SandboxUnavailable("cannot start the sandbox workers") from failures[0]
        # One worker per slot, and none failed.
        for slot, worker in zip(self.slots, cast(list[Worker], spawned), strict=True):
            slot.worker = worker
            self.idle.put_nowait(slot)

    async def close(self) -> None:
        self.closed = True
        for task in list(self._refills):
            task.cancel()
        if self._refills:
            await asyncio.gather(*self._refills, return_exceptions=True)
        for slot in self.slots:
            worker, slot.worker = slot.worker, None
            if worker is not None:
                await worker.kill()

    async def acquire(self) -> tuple[Slot, Worker]:
        wait_s = self.limits.wall_time_s + ACQUIRE_GRACE_S
        try:
            async with asyncio.timeout(wait_s):
                slot = await self.idle.get()
        except TimeoutError:
            raise SandboxUnavailable(
                f"all {len(self.slots)} sandbox {self.name} workers stayed busy for {format_seconds(wait_s)}"
            ) from None
        if self.closed:
            raise SandboxUnavailable("the sandbox pool is closed")
        if slot.worker is None or not slot.worker.alive:
            old, slot.worker = slot.worker, None
            try:
                if old is not None:
                    await old.kill()
                await self.spawn_into(slot)
            except BaseException:
                self.idle.put_nowait(slot)
                raise
        return slot, slot.worker  # type: ignore[return-value]

    async def spawn_into(self, slot: Slot) -> Worker:
        worker = await Worker.spawn(self.limits)
        if self.closed:
            # close() already swept the slots; this one would outlive the pool.
            await worker.kill()
            raise SandboxUnavailable("the sandbox pool is closed")
        slot.worker = worker
        return worker

    def release(self, slot: Slot, on_ready: Callable[[], None] | None = None) -> None:
        """Give the slot back; `on_ready` runs once it can take a job again (after any respawn)."""
        worker = slot.worker
        if not self.closed and worker is not None and worker.alive and worker.jobs < MAX_JOBS_PER_WORKER:
            self.idle.put_nowait(slot)
            if on_ready is not None:
                on_ready()
            return
        if self.closed:
            if on_ready is not None:
                on_ready()
            return
        task = asyncio.create_task(self._refill(slot, on_ready))
        self._refills.add(task)
        task.add_done_callback(self._refills.discard)

    async def _refill(self, slot: Slot, on_ready: Callable[[], None] | None) -> None:
        try:
            old, slot.worker = slot.worker, None
            if old is not None:
                await old.kill()
            try:
                await self.spawn_into(slot)
            except SandboxUnavailable:
                if not self.closed:
                    log.warning("could not respawn a sandbox worker; will retry on next use")
        finally:
            if self.closed:
                if slot.worker is not None:
                    worker, slot.worker = slot.worker, None
                    await worker.kill()
            else:
                self.idle.put_nowait(slot)
            if on_ready is not None:
                on_ready()

    async def discard(self, slot: Slot) -> None:
        worker, slot.worker = slot.worker, None
        if worker is not None:
            await worker.kill()
