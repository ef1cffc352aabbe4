"""ONE poll of one claimed subscription, shared by the scheduler and the poll-now route.

Run the trigger's code with the subscription's inputs and secrets, keep the events whose key is
new, and write everything in one fenced transaction (`poll_store`). RUNTIME.md, "Polling", is
the contract: the first poll seeds, a failure never moves `lastPollTime`, at most 100 new events
per poll and the rest come again, and a capped poll is due again at once.
"""

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from cachetools import LRUCache
from sqlalchemy.ext.asyncio import AsyncEngine

from ..errors import TriggerNotFound
from ..integrations.secrets import secret_context as integration_secret_context
from ..ops.redaction import redact, redact_json, remember_secrets, secret_scope
from ..sandbox import RunResult, SandboxPool, SandboxUnavailable
from ..secretbox import Keyring
from ..timestamps import iso_ms
from ..triggers.inputs import RunnableTrigger, load_runnable
from . import poll_store
from .claims import Claimed
from .event_keys import event_key
from .input_values import password_values, stored_input_errors
from .poll_write import Finished
from .schedule import PauseRule
from .seal_contexts import secret_context

MAX_NEW_EVENTS = 100
SANDBOX_RETRY_S = 15.0


class PollNotRun(Exception):
    """The sandbox could not take the poll: nothing ran, nothing was counted, the lease is back."""


class PollObserver(Protocol):
    def polled(self, run: dict[str, Any], lag_s: float | None, seen: int, new: int, seeded: int) -> None: ...


@dataclass(frozen=True)
class PollDeps:
    engine: AsyncEngine
    sandbox: SandboxPool
    keyring: Keyring
    max_new: int = MAX_NEW_EVENTS
    pause_rule: PauseRule = field(default_factory=PauseRule)
    observer: PollObserver | None = None
    # Per process, checked against the trigger's updated_at at every poll: a change shows at once.
    triggers: LRUCache[uuid.UUID, RunnableTrigger] = field(default_factory=lambda: LRUCache(maxsize=10_000))
    # The reads of triggers in progress, which polls missing the same trigger at once share.
    reading: dict[uuid.UUID, asyncio.Future[RunnableTrigger]] = field(default_factory=dict, repr=False, compare=False)
    # How a finished poll is written: by default alone, in a transaction of its own; the scheduler
    # batches them (runtime.group_commit), so that many polls share one commit.
    writer: Callable[[Finished], Awaitable[None]] | None = None
    # For work that is reads, or one statement, on Postgres: without BEGIN and COMMIT or ROLLBACK,
    # two round trips fewer. Each statement is its own transaction there, as it is in a READ
    # COMMITTED one anyway. On SQLite it is the engine itself: its `begin` hook takes the write
    # lock with BEGIN IMMEDIATE, which autocommit would never release.
    autocommit: AsyncEngine = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        single = self.engine
        if self.engine.dialect.name == "postgresql":
            single = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        object.__setattr__(self, "autocommit", single)



def render_run(run: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(run["id"]), "startedAt": iso_ms(run["started_at"]), "finishedAt": iso_ms(run["finished_at"]),
        "outcome": run["outcome"], "returned": run["returned"], "new": run["new"], "capped": run["capped"],
        "durationMs": round(run["duration_ms"], 1), "error": run["error"],
    }


@dataclass
class _Found:
    """What the code returned, as keyed events, or why it counts as a failure."""

    outcome: str = "ok"
    error: dict[str, Any] | None = None
    keyed: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    returned: int = 0


def _error(code: str, message: str, line: int | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": redact(message)[:1000]}
    if line is not None:
        error["line"] = line
    return error


_OUTCOME_OF_KIND = {"timeout": "timeout", "invalid_output": "invalid_output"}


def _read_result(result: RunResult) -> _Found:
    if not result.ok:
        error = result.error
        kind = error.kind if error else "error"
        code = kind if kind in ("timeout", "memory_limit", "invalid_output") else "code_error"
        return _Found(_OUTCOME_OF_KIND.get(kind, "error"), _error(code, error.message if error else "failed",
                                                                    error.line if error else None))
    found = _Found(returned=len(result.events))
    seen: set[str] = set()
    for index, event in enumerate(result.events):
        key = event_key(event.get("id"))
        if key is None:
            return _Found("invalid_output", _error(
                "invalid_output", f"Result item {index} has no valid id: it must be a non-empty string or a finite "
                "number, at most 255 characters as a string", None,
            ), returned=len(result.events))
        if key not in seen:  # the same id twice in one result is one event
            seen.add(key)
            found.keyed.append((key, event))
    return found


def _body(claim: Claimed, slug: str, started_at: datetime, event: dict[str, Any]) -> str:
    # Built once and stored: the bytes signed are the bytes sent, the same on every attempt.
    return json.dumps({
        "type": "trigger.event", "timestamp": iso_ms(started_at), "data": redact_json(event),
        "trigger": {"id": str(claim.trigger_id), "slug": slug}, "integration": {"id": str(claim.integration_id)},
        "subscription": {"id": str(claim.id)},
    }, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Loaded:
    """What one poll runs with, read for a whole claimed batch at once."""

    row: Any
    tokens: list[tuple[bool, str, str]]


async def load(deps: PollDeps, claims: Sequence[Claimed]) -> dict[uuid.UUID, Loaded]:
    """Two queries for a whole batch of claims: the subscriptions with their triggers' slug and
    version, and their sealed secrets. A subscription deleted since its claim is left out."""
    if not claims:
        return {}
    async with deps.autocommit.connect() as conn:
        rows = await poll_store.load_subscriptions(conn, [c.id for c in claims])
        tokens = await poll_store.secret_tokens(conn, [c for c in claims if c.id in rows])
    return {sid: Loaded(row, tokens.get(sid, [])) for sid, row in rows.items()}


def _open(deps: PollDeps, claim: Claimed, loaded: Loaded) -> tuple[dict[str, str], dict[str, str]]:
    secrets: dict[str, str] = {}
    for own, name, token in loaded.tokens:
        context = secret_context(claim.id, name) if own else integration_secret_context(claim.integration_id, name)
        secrets[name] = deps.keyring.open(token, context)
    return secrets, password_values(deps.keyring, claim.id, loaded.row.sealed_inputs or {})


async def _trigger(deps: PollDeps, claim: Claimed, version: datetime) -> RunnableTrigger | None:
    """The trigger's code and fields, read again only when its `updated_at` moved. The polls that
    miss at once (a worker starting, a trigger just changed) share one read, unless it began before
    the change they need."""
    cached = deps.triggers.get(claim.trigger_id)
    if cached is not None and cached.version == version:
        return cached
    reading = deps.reading.get(claim.trigger_id)
    if reading is None:
        reading = asyncio.ensure_future(load_runnable(deps.engine, claim.integration_id, claim.trigger_id))
        deps.reading[claim.trigger_id] = reading
        reading.add_done_callback(lambda _: deps.reading.pop(claim.trigger_id, None))
    try:
        trigger = await asyncio.shield(reading)
        if trigger.version is not None and trigger.version < version:
            trigger = await load_runnable(deps.engine, claim.integration_id, claim.trigger_id)
    except TriggerNotFound:  # deleted meanwhile: its subscriptions went with it
        return None
    deps.triggers[claim.trigger_id] = trigger
    return trigger


async def poll(deps: PollDeps, claim: Claimed, loaded: Loaded | None = None) -> dict[str, Any] | None:
    """Poll once; the PollRun as the API shows it, or None if the subscription or trigger is gone.
    `loaded` is what `load` read for the claim's batch; without it, the poll reads its own."""
    began = time.monotonic()
    if loaded is None:
        loaded = (await load(deps, [claim])).get(claim.id)
    trigger = await _trigger(deps, claim, loaded.row.trigger_version) if loaded is not None else None
    if loaded is None or trigger is None:
        return None
    row = loaded.row
    secrets, passwords = _open(deps, claim, loaded)
    with secret_scope():
        remember_secrets([*secrets.values(), *passwords.values()])
        seeding = row.seeded_at is None and row.backfill_since is None
        problems = stored_input_errors(trigger.inputs, row.inputs, row.sealed_inputs or {})
        if trigger.polling_code is None:
            found = _Found("error", _error("no_polling_code", "The trigger has no polling code any more"))
        elif problems:
            found = _Found("error", _error(
                "inputs_invalid", "The inputs no longer fit the trigger's input fields: "
                + "; ".join(f"{p.field} {p.message}" for p in problems[:5]),
            ))
        else:
            last_poll_time = row.last_poll_time or (row.backfill_since if row.seeded_at is None else None)
            try:
                result = await deps.sandbox.run(
                    trigger.polling_code, inputs={**row.inputs, **passwords}, secrets=secrets,
                    last_poll_time=iso_ms(last_poll_time) if last_poll_time else None, tenant=str(claim.workspace_id),
                )
            except SandboxUnavailable:
                await poll_store.release_lease(deps.engine, claim, SANDBOX_RETRY_S)
                raise PollNotRun() from None
            found = _read_result(result)
        slug = row.slug
        finished = Finished(
            claim=claim, outcome=found.outcome, error=found.error, returned=found.returned, seeding=seeding,
            interval_seconds=row.interval_seconds, failures_before=row.consecutive_failures, began=began,
            keyed=found.keyed if found.outcome == "ok" else [],
            body_of=lambda event: _body(claim, slug, claim.started_at, event),
        )
        await (deps.writer or _write_alone(deps))(finished)
    if not finished.written:
        return None
    if deps.observer is not None:
        lag = (claim.started_at - claim.due).total_seconds() if claim.due is not None else None
        deps.observer.polled(finished.run, lag, found.returned, finished.new, finished.seeded)
    return render_run(finished.run)


def _write_alone(deps: PollDeps) -> Callable[[Finished], Awaitable[None]]:
    # Imported here: poll_batches builds on this module's PollDeps and load.
    from .poll_batches import write_batch

    async def write(finished: Finished) -> None:
        await write_batch(deps, [finished])
    return write
