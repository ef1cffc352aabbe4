"""Group commit of finished polls: whatever finished while one batch was being written goes in
the next, in one transaction (`poll_write`). An idle worker writes a poll at once, alone; a busy
one writes tens per commit, so that the database's commit rate does not limit the polls.
"""

import asyncio
import logging

from ..db.sql import is_outage
from ..subscriptions import poll_write
from ..subscriptions.poll import PollDeps
from ..subscriptions.poll_write import Finished

log = logging.getLogger("odeus_triggers.runtime.group_commit")

# More in one transaction holds its row locks longer for little gain.
MAX_BATCH = 100


class GroupCommit:
    def __init__(self, deps: PollDeps, max_batch: int = MAX_BATCH) -> None:
        self.deps = deps
        self.max_batch = max_batch
        self._queue: list[tuple[Finished, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def __call__(self, finished: Finished) -> None:
        done = asyncio.get_running_loop().create_future()
        self._queue.append((finished, done))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name="odeus-poll-commits")
        await done

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                await self._write(batch)
        finally:
            self._flusher = None

    async def _write(self, batch: list[tuple[Finished, asyncio.Future[None]]]) -> None:
        try:
            async with self.deps.engine.begin() as conn:
                await poll_write.write(conn, [f for f, _ in batch], self.deps.max_new, self.deps.pause_rule)
        except Exception as exc:
            if len(batch) > 1 and not is_outage(exc):
                # What one poll returned must never fail the others' writes: each alone, then.
                log.warning("a batch of poll results failed (%s); writing them one by one", type(exc).__name__)
                for item in batch:
                    await self._write([item])
                return
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        for _, done in batch:
            if not done.done():  # its poll may have been cancelled by a stop meanwhile
                done.set_result(None)
