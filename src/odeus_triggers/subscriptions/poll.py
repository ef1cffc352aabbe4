"""ONE poll of one claimed subscription, shared by the scheduler and the poll-now route.

Run the trigger's code with the subscription's inputs and secrets, keep the events whose key is
new, and write everything in one fenced transaction (`poll_store`). RUNTIME.md, "Polling", is
the contract: the first poll seeds, a failure never moves `lastPollTime`, at most 100 new events
per poll and the rest come again, and a capped poll is due again at once.
"""

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
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
from .poll_store import Completion, LeaseLost, NewEvent
from .schedule import PauseRule, failure_delay, success_delay
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


def _new_id() -> str:
    return "msg_" + uuid.uuid4().hex


async def _load(deps: PollDeps, claim: Claimed) -> tuple[Any, dict[str, str], dict[str, str]] | None:
    async with deps.autocommit.connect() as conn:
        row = await poll_store.load_subscription(conn, claim.id)
        if row is None:
            return None
        secrets: dict[str, str] = {}
        for own, name, token in await poll_store.secret_tokens(conn, claim.integration_id, claim.id):
            context = secret_context(claim.id, name) if own else integration_secret_context(claim.integration_id, name)
            secrets[name] = deps.keyring.open(token, context)
    return row, secrets, password_values(deps.keyring, claim.id, row.sealed_inputs or {})


async def _trigger(deps: PollDeps, claim: Claimed, version: datetime) -> RunnableTrigger | None:
    """The trigger's code and fields, read again only when its `updated_at` moved."""
    cached = deps.triggers.get(claim.trigger_id)
    if cached is not None and cached.version == version:
        return cached
    try:
        trigger = await load_runnable(deps.engine, claim.integration_id, claim.trigger_id)
    except TriggerNotFound:  # deleted meanwhile: its subscriptions went with it
        return None
    deps.triggers[claim.trigger_id] = trigger
    return trigger


async def poll(deps: PollDeps, claim: Claimed) -> dict[str, Any] | None:
    """Poll once; the PollRun as the API shows it, or None if the subscription or trigger is gone."""
    began = time.monotonic()
    loaded = await _load(deps, claim)
    trigger = await _trigger(deps, claim, loaded[0].trigger_version) if loaded is not None else None
    if loaded is None or trigger is None:
        return None
    row, secrets, passwords = loaded
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
        return await _write(deps, claim, row, found, seeding, began)


async def _write(
    deps: PollDeps, claim: Claimed, row: Any, found: _Found, seeding: bool, began: float
) -> dict[str, Any] | None:
    started = claim.started_at
    new_count, seeded_count, capped = 0, 0, False
    run: dict[str, Any] = {
        "id": uuid.uuid4(), "subscription_id": claim.id, "started_at": started, "outcome": found.outcome,
        "returned": found.returned, "capped": False, "error": found.error,
    }
    try:
        async with deps.engine.begin() as conn:
            if found.keyed and found.outcome == "ok":
                await poll_store.hold(conn, claim)
            if found.outcome == "ok" and seeding:
                for i in range(0, len(found.keyed), poll_store.SEED_CHUNK):
                    seeds = [NewEvent(_new_id(), key, None) for key, _ in found.keyed[i : i + poll_store.SEED_CHUNK]]
                    seeded_count += len(await poll_store.insert_events(conn, claim.id, seeds, "seeded", started))
                run["outcome"] = "seeded"
            elif found.outcome == "ok":
                # Insert no more than the room left under the cap at a time: the excess is never
                # recorded as seen, so it comes again on the next poll.
                i = 0
                while i < len(found.keyed) and new_count < deps.max_new:
                    chunk = found.keyed[i : i + deps.max_new - new_count]
                    offered = [NewEvent(_new_id(), key, _body(claim, row.slug, started, event)) for key, event in chunk]
                    new_count += len(await poll_store.insert_events(conn, claim.id, offered, "pending", started))
                    i += len(chunk)
                capped = i < len(found.keyed)
            success = found.outcome == "ok"
            failures = row.consecutive_failures + 1
            done = Completion(
                success=success, capped=capped, seeded=seeding and success,
                invalid_output=found.outcome == "invalid_output", error=found.error,
                next_in_s=(0.0 if capped else success_delay(row.interval_seconds)) if success
                else failure_delay(row.interval_seconds, failures),
            )
            await poll_store.finish(conn, claim, done, deps.pause_rule)
            if found.error and found.error.get("code") in ("inputs_invalid", "no_polling_code"):
                await poll_store.pause(conn, claim, found.error["code"])
            run.update(new=new_count, capped=capped, **_timing(started, began))
            await poll_store.record_run(conn, run)
    except LeaseLost:
        run.update(outcome="lease_lost", new=0, capped=False, **_timing(started, began))
        new_count = seeded_count = 0
        if not await poll_store.record_lost_run(deps.engine, run):
            return None
    if deps.observer is not None:
        lag = (started - claim.due).total_seconds() if claim.due is not None else None
        deps.observer.polled(run, lag, found.returned, new_count, seeded_count)
    return render_run(run)


def _timing(started: datetime, began: float) -> dict[str, Any]:
    elapsed = time.monotonic() - began
    return {"finished_at": started + timedelta(seconds=elapsed), "duration_ms": elapsed * 1000}
