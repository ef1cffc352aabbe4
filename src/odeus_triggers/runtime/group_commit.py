"""Group commit: what finishes within a few milliseconds of the first item, or while one batch is
being written, goes in one transaction. An idle loop writes an item alone, 5 ms late; a busy one
writes tens per commit, so that the database's commit rate does not limit the polls or the
deliveries.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from ..db.sql import is_outage

log = logging.getLogger("odeus_triggers.runtime.group_commit")

T = TypeVar("T")
# More in one transaction holds its row locks longer for little gain.
MAX_BATCH = 100
LINGER_S = 0.005


class GroupCommit(Generic[T]):
    def __init__(
        self, write: Callable[[list[T]], Awaitable[None]], what: str, max_batch: int = MAX_BATCH,
        linger_s: float = LINGER_S,
    ) -> None:
        """`write` writes a batch all or nothing: in one transaction, or in one statement."""
        self.linger_s = linger_s
        self.write = write
        self.what = what
        self.max_batch = max_batch
        self._queue: list[tuple[T, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def __call__(self, item: T) -> None:
        done = asyncio.get_running_loop().create_future()
        self._queue.append((item, done))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name=f"odeus-commits-{self.what}")
        await done

    async def _flush(self) -> None:
        try:
            # A few milliseconds for the items finishing right after this one: on a busy loop they
            # finish one at a time, and would otherwise each get a commit of their own.
            await asyncio.sleep(self.linger_s)
            while self._queue:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                await self._write(batch)
        finally:
            self._flusher = None

    async def _write(self, batch: list[tuple[T, asyncio.Future[None]]]) -> None:
        try:
            await self.write([item for item, _ in batch])
        except Exception as exc:
            if len(batch) > 1 and not is_outage(exc):
                # What one item holds must never fail the others' writes: each alone, then.
                log.warning("a batch of %s failed (%s); writing them one by one", self.what, type(exc).__name__)
                for one in batch:
                    await self._write([one])
                return
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        for _, done in batch:
            if not done.done():  # its task may have been cancelled by a stop meanwhile
                done.set_result(None)
