"""The scheduler loop (RUNTIME.md, "Scheduling"): claim what is due, poll it, and again.

At most `concurrency` polls are in flight. When there is room, one `claim_due` leases up to the
free slots at once, and one `load` reads what they run with, so that claiming costs two statements
per batch, not per poll; their results are group-committed (`group_commit`). One workspace holds
at most its share of the slots (`workspace_share`): a workspace whose code is slow cannot keep
another's polls from being claimed. Each claim runs `poll()` in a task of its own; a poll that fails is logged and never stops the loop, and a
database outage only slows the loop down. `stop()` drains: no new claims, the polls in flight
finish within the sandbox's wall time plus a margin, and the leases of those that do not are given
back, so that another worker polls them at once rather than after the lease.
"""

import asyncio
import dataclasses
import logging
import time
import uuid
from collections import Counter

from ..db.sql import is_outage
from ..subscriptions.claims import Claimed, claim_due, give_back
from ..subscriptions.poll import Loaded, PollDeps, PollNotRun, load, poll
from .group_commit import GroupCommit

log = logging.getLogger("odeus_triggers.runtime.scheduler")

# A lease always outlasts the poll it covers (RUNTIME.md): the sandbox's wall time plus this.
LEASE_MARGIN_S = 30.0
# How long stop() lets the polls in flight finish beyond the sandbox's wall time.
DRAIN_MARGIN_S = 5.0
# Out of that drain, what cancelling the rest, giving their leases back and closing take.
STOP_RESERVE_S = 1.5
# Nothing due: wait this long before asking again. One indexed query per idle worker every half
# second is the whole idle load on the database.
IDLE_S = 0.5
OUTAGE_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


def workspace_share(concurrency: int, runs_per_workspace: int) -> int:
    """How many of a worker's slots one workspace may hold: enough to keep its share of the
    sandbox busy with the next polls waiting, never so many that a workspace whose code is slow
    holds the slots every other workspace's polls need to be claimed at all."""
    return max(1, min(concurrency, max(2 * runs_per_workspace, concurrency // 4)))


class Scheduler:
    def __init__(
        self, deps: PollDeps, *, concurrency: int, wall_time_s: float, idle_s: float = IDLE_S,
        per_workspace: int | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.deps = dataclasses.replace(deps, writer=GroupCommit(deps))
        self.concurrency = concurrency
        self.per_workspace = per_workspace or workspace_share(concurrency, deps.sandbox.limits.runs_per_tenant)
        self._by_workspace: Counter[uuid.UUID] = Counter()
        self.lease_s = wall_time_s + LEASE_MARGIN_S
        self.drain_s = wall_time_s + DRAIN_MARGIN_S
        self.idle_s = idle_s
        self._in_flight: dict[asyncio.Task[None], Claimed] = {}
        self._stopping = asyncio.Event()
        self._room = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def start(self) -> asyncio.Task[None]:
        if self._loop is None:
            self._loop = asyncio.create_task(self.run(), name="odeus-scheduler")
        return self._loop

    async def run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            free = self.concurrency - len(self._in_flight)
            if free <= 0:
                self._room.clear()
                await self._wait(self._room, None)
                continue
            try:
                claims = await self._claim(free)
                # What the batch's polls run with, in two queries for all of them. If this fails,
                # the claims are polled again when their leases run out.
                loaded = await load(self.deps, claims)
            except Exception as exc:
                delay = OUTAGE_BACKOFF_S[min(failures, len(OUTAGE_BACKOFF_S) - 1)]
                failures += 1
                # The type only: driver messages can quote statements or connection details.
                log.warning(
                    "claiming due subscriptions failed (%s%s); retrying in %.1f s", type(exc).__name__,
                    ", the database is unreachable" if is_outage(exc) else "", delay,
                )
                await self._wait(None, delay)
                continue
            failures = 0
            over: list[Claimed] = []
            for claim in claims:
                if claim.id not in loaded:  # deleted since the claim
                    continue
                if self._by_workspace[claim.workspace_id] >= self.per_workspace:
                    over.append(claim)
                    continue
                self._by_workspace[claim.workspace_id] += 1
                task = asyncio.create_task(self._poll(claim, loaded[claim.id]), name=f"odeus-poll-{claim.id}")
                self._in_flight[task] = claim
                task.add_done_callback(self._done)
            if over:
                await self._give_back(over)
            if len(claims) < free:
                # Everything due is taken: wait, unless stopping. A full batch asks again at once,
                # as soon as there is room, since more may be due.
                await self._wait(None, self.idle_s)

    async def _claim(self, free: int) -> list[Claimed]:
        # A workspace that holds its share of the slots is not claimed for: its polls would only
        # wait here, while another workspace's came due behind them.
        busy = [ws for ws, n in self._by_workspace.items() if n >= self.per_workspace]
        if self.deps.autocommit is self.deps.engine:
            async with self.deps.engine.begin() as conn:
                return await claim_due(conn, free, self.lease_s, busy)
        # One statement: atomic on its own, and committed by itself.
        async with self.deps.autocommit.connect() as conn:
            return await claim_due(conn, free, self.lease_s, busy)

    async def _give_back(self, claims: list[Claimed]) -> None:
        """One claim can bring more of a workspace than its share (it had room for one more, and a
        batch of it was due): the rest is due again at once, for whoever has room."""
        try:
            async with self.deps.engine.begin() as conn:
                await give_back(conn, claims)
        except Exception as exc:
            log.warning("could not give back %d leases (%s): they come due when they run out",
                        len(claims), type(exc).__name__)

    async def _wait(self, event: asyncio.Event | None, timeout: float | None) -> None:
        waiters = [asyncio.ensure_future(self._stopping.wait())]
        if event is not None:
            waiters.append(asyncio.ensure_future(event.wait()))
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def _done(self, task: asyncio.Task[None]) -> None:
        claim = self._in_flight.pop(task, None)
        if claim is not None:
            left = self._by_workspace[claim.workspace_id] - 1
            if left > 0:
                self._by_workspace[claim.workspace_id] = left
            else:
                del self._by_workspace[claim.workspace_id]
        self._room.set()

    async def _poll(self, claim: Claimed, loaded: Loaded) -> None:
        try:
            await poll(self.deps, claim, loaded)
        except PollNotRun:
            log.warning("the sandbox could not take a poll; it is due again shortly",
                        extra={"subscription_id": str(claim.id)})
        except Exception as exc:
            # The type only, never the message: it may quote the code's inputs or a statement. The
            # lease runs out on its own, so the subscription is polled again after it.
            log.error("a poll failed (%s%s); it is retried when its lease runs out", type(exc).__name__,
                      ", the database is unreachable" if is_outage(exc) else "",
                      extra={"subscription_id": str(claim.id)})

    async def stop(self) -> None:
        """Stop claiming, let the polls in flight finish within the drain time, and give back the
        leases of the ones that do not."""
        self._stopping.set()
        # One budget from the signal on (the wall time plus the margin), less a reserve for giving
        # back the leases and closing the pool, so that the process is gone within it.
        deadline = time.monotonic() + self.drain_s - STOP_RESERVE_S
        if self._loop is not None:
            try:
                # The loop notices at once, unless it is in the middle of a claim (bounded by the
                # statement timeout).
                await asyncio.wait_for(asyncio.shield(self._loop), max(deadline - time.monotonic(), 0.01))
            except TimeoutError:
                self._loop.cancel()
            except Exception:  # run() never raises; defensive, so that the drain still happens
                log.exception("the scheduler loop ended with an error")
        running = set(self._in_flight)
        if running:
            _, running = await asyncio.wait(running, timeout=max(deadline - time.monotonic(), 0.01))
        if not running:
            return
        left = [self._in_flight[t] for t in running if t in self._in_flight]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        await self._give_back(left)
        log.info("gave back the leases of polls that did not finish in time", extra={"count": len(left)})
