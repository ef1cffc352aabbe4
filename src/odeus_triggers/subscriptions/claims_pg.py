"""The scheduler's claim on Postgres: lease a batch and read what its polls run with, in ONE
statement (a data-modifying CTE), where the generic path (`claims.claim_due`, then `poll.load`)
makes three round trips. The lease, the fence and the order are `claims.claim_due`'s exactly: the
oldest due first, rows another worker holds skipped, `next_poll_at` moved by the lease and
`lease_epoch` bumped. The batch's secrets come back as JSON arrays on each row, the integration's
and the subscription's own.
"""

import json
import uuid
from collections.abc import Sequence
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import asyncpg

from ..timestamps import as_utc
from .claims import Claimed

# `= ANY(ARRAY(…))` runs the LIMITed choice exactly once (see db.sql.in_chosen). `{busy}` is empty
# or skips the workspaces that hold their share of the worker's slots.
_CLAIM_SQL = """
WITH claimed AS (
    UPDATE subscriptions
    SET claimed_due_at = next_poll_at, next_poll_at = now() + $2::interval, lease_expires_at = now() + $2::interval,
        lease_epoch = lease_epoch + 1
    WHERE id = ANY(ARRAY(
        SELECT id FROM subscriptions
        WHERE status = 'active' AND next_poll_at <= now() AND (lease_expires_at IS NULL OR lease_expires_at <= now()){busy}
        ORDER BY next_poll_at LIMIT $1 FOR UPDATE SKIP LOCKED
    ))
    RETURNING id, workspace_id, integration_id, trigger_id, lease_epoch, claimed_due_at, inputs, sealed_inputs,
              interval_seconds, backfill_since, last_poll_time, seeded_at, consecutive_failures
)
SELECT c.*, now() AS started_at, t.slug, t.updated_at AS trigger_version,
       (SELECT json_agg(json_build_array(i.name, i.token)) FROM integration_secrets i
        WHERE i.integration_id = c.integration_id) AS integration_tokens,
       (SELECT json_agg(json_build_array(s.name, s.token)) FROM subscription_secrets s
        WHERE s.subscription_id = c.id) AS own_tokens
FROM claimed c JOIN triggers t ON t.id = c.trigger_id
ORDER BY c.claimed_due_at
"""
CLAIM_SQL = _CLAIM_SQL.format(busy="")
CLAIM_EXCLUDING_SQL = _CLAIM_SQL.format(busy=" AND workspace_id <> ALL($3::uuid[])")


# `claims.give_back` for a whole batch: due at once, at the due time the claim took, fenced per row.
GIVE_BACK_SQL = """
UPDATE subscriptions s SET next_poll_at = least(coalesce(s.claimed_due_at, now()), now()), lease_expires_at = NULL
FROM unnest($1::uuid[], $2::int[]) AS g(id, epoch)
WHERE s.id = g.id AND s.lease_epoch = g.epoch
"""


def _json(value: Any) -> Any:
    # The pool's connections decode json themselves; a bare asyncpg connection gives the text.
    return json.loads(value) if isinstance(value, str) else value


def claimed_batch(rows: Sequence[asyncpg.Record]) -> list[tuple[Claimed, SimpleNamespace, list[tuple[bool, str, str]]]]:
    """Each row as its claim, the subscription's fields its poll reads, and its sealed secrets
    (is its own, name, token), the integration's first, so that its own win a merge by name."""
    batch = []
    for r in rows:
        claim = Claimed(r["id"], r["workspace_id"], r["integration_id"], r["trigger_id"], r["lease_epoch"],
                        as_utc(r["claimed_due_at"]) if r["claimed_due_at"] is not None else None,
                        as_utc(r["started_at"]))
        row = SimpleNamespace(
            id=r["id"], inputs=_json(r["inputs"]), sealed_inputs=_json(r["sealed_inputs"]),
            interval_seconds=r["interval_seconds"], backfill_since=r["backfill_since"],
            last_poll_time=r["last_poll_time"], seeded_at=r["seeded_at"],
            consecutive_failures=r["consecutive_failures"], slug=r["slug"], trigger_version=r["trigger_version"],
        )
        tokens = [(False, name, token) for name, token in _json(r["integration_tokens"]) or ()]
        tokens += [(True, name, token) for name, token in _json(r["own_tokens"]) or ()]
        batch.append((claim, row, tokens))
    return batch


async def claim_and_load(
    driver: asyncpg.Connection, limit: int, lease_s: float, busy: Sequence[uuid.UUID] = ()
) -> list[tuple[Claimed, SimpleNamespace, list[tuple[bool, str, str]]]]:
    lease = timedelta(seconds=lease_s)
    if busy:
        rows = await driver.fetch(CLAIM_EXCLUDING_SQL, limit, lease, list(busy))
    else:
        rows = await driver.fetch(CLAIM_SQL, limit, lease)
    return claimed_batch(rows)


async def give_back(driver: asyncpg.Connection, claims: Sequence[Claimed]) -> None:
    await driver.execute(GIVE_BACK_SQL, [c.id for c in claims], [c.lease_epoch for c in claims])
