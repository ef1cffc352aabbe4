"""The scheduler loop (RUNTIME.md, "Scheduling"): claim what is due, poll it, and again.

A `LeaseLoop` over subscriptions: one claim leases up to the free slots and reads what they run
with, and the polls' results are group-committed (`GroupCommit`): on Postgres a statement per batch
each (`poll_batches`), not per poll. The key of the share is the workspace: a workspace whose code
is slow cannot keep another's polls from being claimed, and a claim skips the workspaces that hold
their share. `stop()` lets the polls in flight finish within
the sandbox's wall time plus a margin.
"""

import dataclasses
import logging
import uuid
from collections.abc import Callable, Sequence

from ..db.driver import HeldDriver
from ..subscriptions.claims import Claimed
from ..subscriptions.poll import Loaded, PollDeps, PollNotRun, poll
from ..subscriptions.poll_batches import claim_batch, give_back_batch, write_batch
from ..subscriptions.poll_write import Finished
from .group_commit import GroupCommit
from .lease_loop import IDLE_S, STOP_RESERVE_S, LeaseLoop

__all__ = ["DRAIN_MARGIN_S", "LEASE_MARGIN_S", "STOP_RESERVE_S", "Scheduler", "workspace_share"]

log = logging.getLogger("odeus_triggers.runtime.scheduler")

# A lease always outlasts the poll it covers (RUNTIME.md): the sandbox's wall time plus this.
LEASE_MARGIN_S = 30.0
# How long stop() lets the polls in flight finish beyond the sandbox's wall time.
DRAIN_MARGIN_S = 5.0


def workspace_share(concurrency: int, runs_per_workspace: int) -> int:
    """How many of a worker's polls of one workspace may be running or waiting for the sandbox:
    twice what the sandbox lets it run at once, so that its next poll is ready when one ends, and
    never every slot. A poll beyond that would only wait in the sandbox behind its own workspace's
    runs, holding a slot that another workspace's due poll needs to be claimed at all. A poll whose
    code has run leaves the share while its result is committed."""
    if concurrency == 1:
        return 1
    return max(1, min(concurrency - 1, 2 * runs_per_workspace))


class Scheduler(LeaseLoop[tuple[Claimed, Loaded], uuid.UUID]):
    claims = "due subscriptions"
    what = "polls"
    # A poll waits for at most its workspace's own runs (each within the wall time), and the lease
    # is the wall time plus 30 s.
    defers = True

    def __init__(
        self, deps: PollDeps, *, concurrency: int, wall_time_s: float, idle_s: float = IDLE_S,
        per_workspace: int | None = None,
    ) -> None:
        super().__init__(
            concurrency=concurrency, drain_s=wall_time_s + DRAIN_MARGIN_S, idle_s=idle_s,
            share=per_workspace or workspace_share(concurrency, deps.sandbox.limits.runs_per_tenant),
        )
        self.deps = dataclasses.replace(deps, writer=self._write)
        # On Postgres, a connection each for the loop's claims and give-backs and for the writes:
        # each runs its statements one after another.
        self._claiming, self._writing = HeldDriver(deps.engine), HeldDriver(deps.engine)
        self._commit = GroupCommit[Finished](lambda batch: write_batch(self.deps, batch, self._writing), "polls")
        self.lease_s = wall_time_s + LEASE_MARGIN_S
        self._items: dict[uuid.UUID, tuple[Claimed, Loaded]] = {}
        # Called when a poll committed new events: the dispatcher next to it sends them at once.
        self.on_new_events: Callable[[], None] | None = None

    async def _write(self, finished: Finished) -> None:
        # The code has run: the workspace's next poll may take its place in the sandbox's queue
        # while this one's result is committed.
        item = self._items.pop(finished.claim.id, None)
        if item is not None:
            self.release_share(item)
        await self._commit(finished)
        if finished.new and self.on_new_events is not None:
            self.on_new_events()

    async def claim(self, free: int, busy: Sequence[uuid.UUID]) -> list[tuple[Claimed, Loaded]]:
        # If loading fails after the claim, the claims are polled again when their leases run out.
        return await claim_batch(self.deps, free, self.lease_s, busy, self._claiming)

    def key(self, item: tuple[Claimed, Loaded]) -> uuid.UUID:
        return item[0].workspace_id

    async def handle(self, item: tuple[Claimed, Loaded]) -> None:
        claim, loaded = item
        self._items[claim.id] = item
        try:
            await poll(self.deps, claim, loaded)
        except PollNotRun:
            log.warning("the sandbox could not take a poll; it is due again shortly",
                        extra={"subscription_id": str(claim.id)})
        finally:
            self._items.pop(claim.id, None)

    async def give_back(self, items: list[tuple[Claimed, Loaded]], over_share: bool) -> None:
        # Due at once either way: a workspace over its share is skipped by the next claims here.
        await give_back_batch(self.deps, [c for c, _ in items], self._claiming)

    async def stop(self) -> None:
        await super().stop()
        await self._claiming.close()
        await self._writing.close()
