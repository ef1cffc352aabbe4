"""A batch of finished polls written in ONE statement on Postgres, where the generic path
(`poll_write.write`: BEGIN, lock, events, UPDATEs, runs, COMMIT) makes five round trips.

The rules are `poll_write.write`'s and `poll_store.finish_stmt`'s, in SQL over the batch unnested:
- the fence: the UPDATE changes only the rows still at the claim's `lease_epoch`; its RETURNING is
  the set of live polls, and only they insert events;
- every shape of completion in one UPDATE, chosen per row (success, seeded, invalid output, the
  failure counters, the pause rules, and a code that pauses on the spot);
- the events inserted if new (the unique key decides, nothing is SELECTed first); an existing
  row keeps its own id, so the ids that come back tell the new ones apart;
- one poll-run record per poll whose subscription still exists: `lease_lost` where the fence
  failed.
A statement is atomic on its own: it needs no BEGIN or COMMIT. It covers every batch except one
where a poll has more new-event candidates than the per-poll cap, which needs the generic path's
rounds (`fits`).
"""

import json
from collections.abc import Sequence
from datetime import timedelta

import asyncpg

from .poll_write import PAUSING_CODES, Finished, new_event_id, next_in_s, run_record
from .schedule import PauseRule

# The pause rules (`poll_store.finish_stmt`), read from the row as the UPDATE finds it.
_STUCK_INVALID = "(NOT i.success AND i.invalid AND s.consecutive_invalid_outputs + 1 >= $22)"
_STUCK_FAILING = ("(NOT i.success AND s.consecutive_failures + 1 >= $23"
                  " AND coalesce(s.failing_since, i.started) <= now() - $24::interval)")

WRITE_SQL = f"""
WITH i AS (
    SELECT * FROM unnest($1::uuid[], $2::int[], $3::bool[], $4::bool[], $5::bool[], $6::text[], $7::interval[],
                         $8::timestamptz[], $9::text[], $10::uuid[], $11::timestamptz[], $12::text[], $13::int[],
                         $14::float8[], $15::bool[])
        AS i(id, epoch, success, seeded, invalid, pausing, next_in, started, error, run_id, finished, outcome,
             returned, duration_ms, seeding)
), upd AS (
    UPDATE subscriptions s
    SET lease_expires_at = NULL, last_polled_at = now(), updated_at = now(), next_poll_at = now() + i.next_in,
        consecutive_failures = CASE WHEN i.success THEN 0 ELSE s.consecutive_failures + 1 END,
        consecutive_invalid_outputs = CASE WHEN i.invalid THEN s.consecutive_invalid_outputs + 1 ELSE 0 END,
        failing_since = CASE WHEN i.success THEN NULL ELSE coalesce(s.failing_since, i.started) END,
        last_error = i.error::jsonb,
        last_succeeded_at = CASE WHEN i.success THEN now() ELSE s.last_succeeded_at END,
        seeded_at = CASE WHEN i.seeded THEN now() ELSE s.seeded_at END,
        last_poll_time = CASE WHEN i.success THEN i.started ELSE s.last_poll_time END,
        status = CASE WHEN s.status = 'active' AND ({_STUCK_INVALID} OR {_STUCK_FAILING} OR i.pausing IS NOT NULL)
                      THEN 'paused_errors' ELSE s.status END,
        paused_reason = CASE WHEN s.status <> 'active' THEN s.paused_reason
                             WHEN {_STUCK_INVALID} THEN 'invalid_output'
                             WHEN {_STUCK_FAILING} THEN 'failing'
                             ELSE coalesce(i.pausing, s.paused_reason) END
    FROM i
    WHERE s.id = i.id AND s.lease_epoch = i.epoch
    RETURNING s.id
), ev AS (
    SELECT * FROM unnest($16::text[], $17::uuid[], $18::text[], $19::text[], $20::text[], $21::timestamptz[])
        AS ev(id, subscription_id, event_key, state, body, seen_at)
), ins AS (
    INSERT INTO trigger_events (id, subscription_id, event_key, state, body, first_seen_at, last_seen_at, attempts,
                                next_attempt_at, lease_epoch)
    SELECT ev.id, ev.subscription_id, ev.event_key, ev.state, ev.body, ev.seen_at, ev.seen_at, 0,
           CASE WHEN ev.state = 'pending' THEN ev.seen_at END, 0
    FROM ev JOIN upd ON upd.id = ev.subscription_id
    ON CONFLICT (subscription_id, event_key) DO UPDATE SET last_seen_at = excluded.last_seen_at
    RETURNING id, subscription_id
), found AS (
    SELECT ins.subscription_id, count(*) AS n FROM ins JOIN ev ON ev.id = ins.id GROUP BY ins.subscription_id
), runs AS (
    INSERT INTO poll_runs (id, subscription_id, started_at, finished_at, outcome, returned, new, capped, duration_ms,
                           error)
    SELECT i.run_id, i.id, i.started, i.finished, CASE WHEN upd.id IS NULL THEN 'lease_lost' ELSE i.outcome END,
           i.returned, CASE WHEN i.seeding THEN 0 ELSE coalesce(f.n, 0) END, false, i.duration_ms, i.error::jsonb
    FROM i LEFT JOIN upd ON upd.id = i.id LEFT JOIN found f ON f.subscription_id = i.id
    WHERE upd.id IS NOT NULL OR EXISTS (SELECT 1 FROM subscriptions s WHERE s.id = i.id)
    RETURNING subscription_id, outcome
)
SELECT r.subscription_id, r.outcome, coalesce(f.n, 0) AS n FROM runs r LEFT JOIN found f USING (subscription_id)
"""


def fits(batch: Sequence[Finished], max_new: int) -> bool:
    """Whether one statement can write the batch: no poll offers more events than its cap, which
    would need rounds of inserts to find which ones are new (a seeding poll has no cap), and no
    subscription comes twice (a result that waited past its lease, next to the poll that took the
    lease over): the statement matches polls to their rows by subscription."""
    ids = {f.claim.id for f in batch}
    return len(ids) == len(batch) and all(f.seeding or not f.success or len(f.keyed) <= max_new for f in batch)


async def write_in_one(driver: asyncpg.Connection, batch: Sequence[Finished], rule: PauseRule) -> None:
    """Write the batch; each item's `run`, counts and `written` say what was recorded, as
    `poll_write.write` leaves them."""
    # In id order, so that where Postgres walks the arrays against the primary key it locks the
    # rows in the order the generic path does. Where its plan differs, two batches sharing rows (both
    # hold lease-lost polls of the same subscriptions: rare) can deadlock; the loser's statement
    # fails, and `poll_batches.write_batch` writes it through the generic path.
    batch = sorted(batch, key=lambda f: f.claim.id)
    polls: list[list[object]] = [[] for _ in range(15)]
    events: list[list[object]] = [[] for _ in range(6)]
    for f in batch:
        f.reset()
        f.run = run_record(f)
        error = json.dumps(f.error) if f.error is not None else None
        pausing = f.error.get("code") if f.error and f.error.get("code") in PAUSING_CODES else None
        for column, value in zip(polls, (
            f.claim.id, f.claim.lease_epoch, f.success, f.success and f.seeding, f.outcome == "invalid_output",
            pausing, timedelta(seconds=next_in_s(f, capped=False)), f.claim.started_at, error, f.run["id"],
            f.run["finished_at"], f.run["outcome"], f.returned, f.run["duration_ms"], f.seeding,
        ), strict=True):
            column.append(value)
        if f.success:
            state = "seeded" if f.seeding else "pending"
            for key, event in f.keyed:
                for column, value in zip(events, (
                    new_event_id(), f.claim.id, key, state, None if f.seeding or f.body_of is None else f.body_of(event),
                    f.claim.started_at,
                ), strict=True):
                    column.append(value)
    rows = await driver.fetch(WRITE_SQL, *polls, *events, rule.invalid_outputs, rule.failures,
                              timedelta(seconds=rule.failing_s))
    recorded = {r["subscription_id"]: r for r in rows}
    for f in batch:
        r = recorded.get(f.claim.id)
        f.written = r is not None
        f.offset = len(f.keyed)
        if r is None:
            continue
        f.run["outcome"] = r["outcome"]
        if r["outcome"] != "lease_lost":
            if f.seeding:
                f.seeded = r["n"]
            else:
                f.new = f.run["new"] = r["n"]
