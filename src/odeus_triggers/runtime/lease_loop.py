"""The loop that the scheduler and the dispatcher share: claim leased work, run it, and again.

At most `concurrency` items are in flight. When there is room, one claim leases up to the free
slots at once, so that claiming costs a statement per batch, not per item. Half the slots are
kept for keys (a workspace for polls, a destination host for deliveries) under their `share`, so
that work that is slow for one tenant or one receiver cannot keep everyone else's from being
claimed: once only those are left, a claim skips the keys at their share, and gives back what it
brought beyond a key's share. Each item runs in a task of
its own: one that fails is logged and never stops the loop, and a database outage only slows the
loop down. `stop()` drains: no new claims, the items in flight finish within the drain time, and
the leases of those that do not are given back, so that another worker takes them at once rather
than after the lease.
"""

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections import Counter, deque
from collections.abc import Hashable, Sequence
from typing import Generic, TypeVar

from ..db.sql import is_outage

log = logging.getLogger("odeus_triggers.runtime")

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

# Out of the drain, what cancelling the rest, giving their leases back and closing take.
STOP_RESERVE_S = 1.5
# Nothing due: wait this long before asking again. One indexed query per idle loop every half
# second is the whole idle load on the database.
IDLE_S = 0.5
OUTAGE_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
# With fewer slots free than a fifth of them, wait this much longer for more before claiming.
REFILL_WAIT_S = 0.02


class LeaseLoop(ABC, Generic[T, K]):
    # For the logs: what is claimed ("due subscriptions") and what runs ("polls").
    claims = "work"
    what = "work"
    # Whether items over their key's share may wait here for it (see `_deferred`): only when one
    # item of the key and the wait for it always fit in a lease together.
    defers = False

    def __init__(self, *, concurrency: int, share: int, drain_s: float, idle_s: float = IDLE_S) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self.share = max(1, min(share, concurrency))
        self.drain_s = drain_s
        self.idle_s = idle_s
        self._in_flight: dict[asyncio.Task[None], T] = {}
        self._by_key: Counter[K] = Counter()
        # Items still counted against their key's share (by id()): `release_share` ends that early.
        self._sharing: set[int] = set()
        # Items a claim brought beyond their key's share, up to `deferrable` a key: they hold no
        # slot, and start as the key's own items leave the share, instead of going back to the
        # database and being claimed again.
        self._deferred: dict[K, deque[T]] = {}
        self.deferrable = share if self.defers else 0
        # How many to claim at most: all the free slots, unless the last claims brought mostly more
        # of a key than its share (one workspace's backlog, one host's): then about what was kept,
        # so that the loop does not claim and give back the same rows over and over.
        self._batch = concurrency
        self.refill = max(1, concurrency // 5)
        # Half the slots (one of two) only ever go to keys under their share.
        self.reserve = concurrency // 2
        self._stopping = asyncio.Event()
        self._room = asyncio.Event()
        # Set by `wake`: new work may be due, so an idle wait ends at once.
        self._nudged = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None

    @abstractmethod
    async def claim(self, free: int, busy: Sequence[K]) -> list[T]:
        """Lease up to `free` items, none of them (if the claim can tell) under a key in `busy`."""

    @abstractmethod
    def key(self, item: T) -> K: ...

    @abstractmethod
    async def handle(self, item: T) -> None:
        """Run one item; an exception is logged, and its lease runs out on its own."""

    @abstractmethod
    async def give_back(self, items: list[T], over_share: bool) -> None:
        """Hand leases back unused: items over their key's share, or still in flight at a stop."""

    def wake(self) -> None:
        """New work is due (events this process just committed): claim now, not after the idle
        wait."""
        self._nudged.set()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def start(self) -> asyncio.Task[None]:
        if self._loop is None:
            self._loop = asyncio.create_task(self.run(), name=f"odeus-{self.what}")
        return self._loop

    async def run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            free = await self._free_slots()
            if free <= 0:
                continue
            busy = [k for k, n in self._by_key.items() if n >= self.share] if self._crowded() else []
            self._room.clear()
            asked = min(free, self._batch)
            try:
                items = await self.claim(asked, busy)
            except Exception as exc:
                delay = OUTAGE_BACKOFF_S[min(failures, len(OUTAGE_BACKOFF_S) - 1)]
                failures += 1
                # The type only: driver messages can quote statements or connection details.
                log.warning(
                    "claiming %s failed (%s%s); retrying in %.1f s", self.claims, type(exc).__name__,
                    ", the database is unreachable" if is_outage(exc) else "", delay,
                )
                await self._wait(None, delay)
                continue
            failures = 0
            over: list[T] = []
            for item in items:
                key = self.key(item)
                if self._by_key[key] >= self.share and self._crowded():
                    waiting = self._deferred.setdefault(key, deque())
                    if len(waiting) < self.deferrable:
                        waiting.append(item)  # starts when its key is under its share again
                    else:
                        over.append(item)
                    continue
                self._start(item, key)
            if over:
                await self._give_back(over, over_share=True)
            kept = len(items) - len(over)
            # Down to what was kept after a claim that was mostly leftovers (one key's backlog), up by
            # one after one that was not: a few leftovers among many keys cost one statement.
            self._batch = max(1, kept) if len(over) > kept else min(self.concurrency, self._batch + 1)
            if len(items) < asked:
                # Everything due is taken: wait, unless stopping. A full batch asks again at once,
                # as soon as there is room, since more may be due. So does a short one that left
                # out keys at their share, as soon as one of theirs (or any) slot frees.
                self._nudged.clear()
                await self._wait(self._room if busy else self._nudged, self.idle_s)

    def _crowded(self) -> bool:
        """Whether the slots kept for keys under their share are all that is left: until then, a
        key may go past its share, since nobody else is waiting for the room it takes."""
        return len(self._in_flight) >= self.concurrency - self.reserve

    async def _free_slots(self) -> int:
        """The free slots, once there are enough to claim a batch: a loop that claimed whenever one
        slot freed would claim one at a time, a statement per item. It waits at most REFILL_WAIT_S
        for more, from the moment one is free."""
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while not self._stopping.is_set():
            free = self.concurrency - len(self._in_flight)
            if free >= self.refill:
                return free
            if free > 0:
                deadline = deadline or loop.time() + REFILL_WAIT_S
                if loop.time() >= deadline:
                    return free
            self._room.clear()
            await self._wait(self._room, None if deadline is None else deadline - loop.time())
        return 0

    async def _handle(self, item: T) -> None:
        try:
            await self.handle(item)
        except Exception as exc:
            # The type only, never the message: it may quote inputs or a statement. The lease
            # runs out on its own, so the item is taken again after it.
            log.error("one of the %s failed (%s%s); it is retried when its lease runs out", self.what,
                      type(exc).__name__, ", the database is unreachable" if is_outage(exc) else "")

    async def _give_back(self, items: list[T], over_share: bool) -> None:
        try:
            await self.give_back(items, over_share)
        except Exception as exc:
            log.warning("could not give back %d leases of %s (%s): they come due when they run out",
                        len(items), self.what, type(exc).__name__)

    async def _wait(self, event: asyncio.Event | None, timeout: float | None) -> None:
        waiters = [asyncio.ensure_future(self._stopping.wait())]
        if event is not None:
            waiters.append(asyncio.ensure_future(event.wait()))
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def _start(self, item: T, key: K) -> None:
        self._by_key[key] += 1
        self._sharing.add(id(item))
        task = asyncio.create_task(self._handle(item), name=f"odeus-{self.what}-item")
        self._in_flight[task] = item
        task.add_done_callback(self._done)

    def release_share(self, item: T) -> None:
        """The item no longer holds what the share protects (the sandbox, the receiver): only its
        write is left. It still holds its slot until it is done. An item of the same key that a
        claim brought beyond the share takes its place."""
        if id(item) in self._sharing:
            self._sharing.discard(id(item))
            key = self.key(item)
            if self._by_key[key] > 1:
                self._by_key[key] -= 1
            else:
                del self._by_key[key]
            waiting = self._deferred.get(key)
            if waiting and not self._stopping.is_set():
                follower = waiting.popleft()
                if not waiting:
                    del self._deferred[key]
                self._start(follower, key)
            self._room.set()

    def _done(self, task: asyncio.Task[None]) -> None:
        item = self._in_flight.pop(task, None)
        if item is not None:
            self.release_share(item)
        self._room.set()

    async def stop(self) -> None:
        """Stop claiming, let the items in flight finish within the drain time, and give back the
        leases of the ones that do not."""
        self._stopping.set()
        # One budget from the signal on, less a reserve for giving back the leases and closing,
        # so that the process is gone within it.
        deadline = time.monotonic() + self.drain_s - STOP_RESERVE_S
        if self._loop is not None:
            try:
                # The loop notices at once, unless it is in the middle of a claim (bounded by the
                # statement timeout).
                await asyncio.wait_for(asyncio.shield(self._loop), max(deadline - time.monotonic(), 0.01))
            except TimeoutError:
                self._loop.cancel()
            except Exception:  # run() never raises; defensive, so that the drain still happens
                log.exception("the %s loop ended with an error", self.what)
        # Once the loop has stopped claiming: what waits for its key's share never starts now, so
        # it is due again at once, for another worker.
        deferred = [item for waiting in self._deferred.values() for item in waiting]
        self._deferred.clear()
        if deferred:
            await self._give_back(deferred, over_share=False)
        running = set(self._in_flight)
        if running:
            _, running = await asyncio.wait(running, timeout=max(deadline - time.monotonic(), 0.01))
        if not running:
            return
        left = [self._in_flight[t] for t in running if t in self._in_flight]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        await self._give_back(left, over_share=False)
        log.info("gave back the leases of %s that did not finish in time", self.what, extra={"count": len(left)})
