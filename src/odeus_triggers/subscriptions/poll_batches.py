"""The scheduler's steps per batch of polls: claim them (with what they run with), write their
results, and give back the leases of claims it cannot run. On Postgres each is one statement on
the driver (`claims_pg`, `poll_write_pg`); on SQLite, and for a batch that one statement cannot
write, the generic Core statements (`claims`, `poll.load`, and `poll_write.write` in a transaction).
"""

import logging
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager

import asyncpg

from ..db.driver import raw_driver
from ..db.sql import is_outage
from . import claims_pg, poll_write, poll_write_pg
from .claims import Claimed, claim_due, give_back
from .poll import Loaded, PollDeps, load
from .poll_write import Finished

log = logging.getLogger("odeus_triggers.subscriptions.poll_batches")


# Where a step's asyncpg connection comes from: by default one checked out of the pool for it.
Driver = Callable[[], AbstractAsyncContextManager[asyncpg.Connection]]


def _postgres(deps: PollDeps) -> bool:
    return deps.engine.dialect.name == "postgresql"


def _driver(deps: PollDeps, driver: Driver | None) -> AbstractAsyncContextManager[asyncpg.Connection]:
    return driver() if driver is not None else raw_driver(deps.engine)


async def claim_batch(
    deps: PollDeps, limit: int, lease_s: float, busy: Sequence[uuid.UUID] = (), driver: Driver | None = None
) -> list[tuple[Claimed, Loaded]]:
    """Up to `limit` due subscriptions leased to the caller, the oldest due first, none of the
    workspaces in `busy`, each with what its poll runs with. One deleted since its claim is left
    out (its lease runs out on its own)."""
    if _postgres(deps):
        async with _driver(deps, driver) as conn:
            batch = await claims_pg.claim_and_load(conn, limit, lease_s, busy)
        return [(claim, Loaded(row, tokens)) for claim, row, tokens in batch]
    async with deps.engine.begin() as conn:
        claims = await claim_due(conn, limit, lease_s, busy)
    loaded = await load(deps, claims)
    return [(c, loaded[c.id]) for c in claims if c.id in loaded]


async def give_back_batch(deps: PollDeps, claims: Sequence[Claimed], driver: Driver | None = None) -> None:
    """Hand leases back unused (`claims.give_back`), in one statement of its own."""
    if not claims:
        return
    if _postgres(deps):
        async with _driver(deps, driver) as conn:
            await claims_pg.give_back(conn, claims)
        return
    async with deps.engine.begin() as conn:
        await give_back(conn, claims)


async def write_batch(deps: PollDeps, batch: list[Finished], driver: Driver | None = None) -> None:
    """Write finished polls, fenced, all or nothing; each item's `run`, counts and `written` say
    what was recorded."""
    if _postgres(deps) and poll_write_pg.fits(batch, deps.max_new):
        try:
            async with _driver(deps, driver) as conn:
                await poll_write_pg.write_in_one(conn, batch, deps.pause_rule)
            return
        except Exception as exc:
            if is_outage(exc):
                raise
            # A subscription deleted while the statement ran (its poll-run's foreign key fails), or
            # a deadlock with another batch: the generic path locks the rows first, in id order,
            # and writes nothing for a deleted one.
            log.warning("writing %d polls in one statement failed (%s); writing them in a transaction",
                        len(batch), type(exc).__name__)
    async with deps.engine.begin() as conn:
        await poll_write.write(conn, batch, deps.max_new, deps.pause_rule)
