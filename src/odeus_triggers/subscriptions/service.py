"""The rules of subscriptions: what a create or a PATCH may hold, and what a read shows.

Every problem of a request is collected and raised as one 400 before anything is written.
"""

import base64
import secrets as random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ..api.pagination import Page, encode_cursor
from ..egress.destinations import destination_problem
from ..errors import FieldError, SubscriptionNotFound, TriggerNotFound, ValidationFailed
from ..integrations.secret_rules import MAX_SECRETS, secret_map_errors, too_many
from ..ops.redaction import remember_secrets
from ..secretbox import Keyring
from ..timestamps import as_utc, utcnow
from ..triggers.body import CODE_FIELD
from ..triggers.inputs import RunnableTrigger, load_runnable, password_values_of
from ..triggers.poll_time import parse_poll_time
from . import store, store_pg
from .input_values import checked_inputs, shown, stored_input_errors
from .render import render
from .schemas import MAX_INTERVAL_S, SubscriptionCreate, SubscriptionPatch, SubscriptionStatus
from .seal_contexts import secret_context, signing_context

DEFAULT_INTERVAL_S = 300
CHANGEABLE_STATUSES = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAUSED)


@dataclass(frozen=True, slots=True)
class Rules:
    """What the operator decides: the shortest interval, and whether webhooks may be private."""

    min_interval_s: int
    allow_private_network: bool


def new_signing_secret() -> str:
    return "whsec_" + base64.b64encode(random.token_bytes(32)).decode("ascii")


def _interval_errors(value: int | None, rules: Rules) -> list[FieldError]:
    if value is not None and not rules.min_interval_s <= value <= MAX_INTERVAL_S:
        return [FieldError(field="intervalSeconds", message=f"must be from {rules.min_interval_s} to {MAX_INTERVAL_S:,}")]
    return []


async def _webhook_errors(url: str | None, rules: Rules) -> list[FieldError]:
    if url is None:
        return []
    problem = await destination_problem(url, allow_private_network=rules.allow_private_network)
    return [FieldError(field="webhookUrl", message=problem)] if problem else []


def _secret_errors(body_secrets: dict[str, Any] | None) -> list[FieldError]:
    return secret_map_errors(body_secrets) if body_secrets else []


def _sealed_secrets(keyring: Keyring, subscription_id: uuid.UUID, values: dict[str, Any]) -> dict[str, str]:
    return {n: keyring.seal(v, secret_context(subscription_id, n)) for n, v in values.items() if v is not None}


async def _runnable(engine: AsyncEngine, integration_id: uuid.UUID, trigger_id: uuid.UUID) -> RunnableTrigger:
    trigger = await load_runnable(engine, integration_id, trigger_id)
    if trigger.polling_code is None:
        raise ValidationFailed.of([FieldError(
            field=CODE_FIELD, message="is not set on this trigger: a WEBHOOK trigger has no code to poll, so it cannot be "
            "subscribed to",
        )])
    return trigger


class _TriggerChanged(Exception):
    """The cached trigger is no longer the stored one: nothing was inserted."""


async def create_subscription(
    engine: AsyncEngine, keyring: Keyring, rules: Rules, workspace_id: uuid.UUID,
    integration_id: uuid.UUID, trigger_id: uuid.UUID, body: SubscriptionCreate,
) -> dict[str, Any]:
    args = (engine, keyring, rules, workspace_id, integration_id, trigger_id, body)
    cached = store_pg.cached_runnable(engine, integration_id, trigger_id)
    if cached is not None:
        try:
            return await _create(*args, cached, cached.version)
        except (_TriggerChanged, ValidationFailed):
            # A 400 from a cached copy may be about fields the trigger no longer has: only a
            # fresh read may answer it.
            store_pg.forget(integration_id, trigger_id)
    trigger = await _runnable(engine, integration_id, trigger_id)
    store_pg.remember(engine, integration_id, trigger_id, trigger)
    return await _create(*args, trigger, None)


async def _create(
    engine: AsyncEngine, keyring: Keyring, rules: Rules, workspace_id: uuid.UUID,
    integration_id: uuid.UUID, trigger_id: uuid.UUID, body: SubscriptionCreate,
    trigger: RunnableTrigger, cached_version: datetime | None,
) -> dict[str, Any]:
    """Validate against `trigger` and insert; with `cached_version`, only if the trigger is still at it."""
    subscription_id = uuid.uuid4()
    # The trigger's fields say which inputs are PASSWORD values: from here on, no log line shows them.
    remember_secrets(password_values_of(trigger.inputs, body.inputs))
    stored, errors = checked_inputs(trigger.inputs, body.inputs, keyring=keyring, subscription_id=subscription_id, kept={})
    errors += _secret_errors(body.secrets)
    if body.secrets and len(body.secrets) > MAX_SECRETS:
        errors.append(too_many(len(body.secrets)))
    errors += _interval_errors(body.intervalSeconds, rules)
    backfill = parse_poll_time(body.backfillSince) if body.backfillSince is not None else None
    if body.backfillSince is not None and backfill is None:
        errors.append(FieldError(field="backfillSince", message="must be an ISO-8601 date-time, e.g. 2024-05-01T10:00:00Z"))
    errors += await _webhook_errors(body.webhookUrl, rules)
    if errors or stored is None:
        raise ValidationFailed.of(errors)
    now = utcnow()
    signing_secret = new_signing_secret()
    values = {
        "id": subscription_id, "workspace_id": workspace_id, "integration_id": integration_id, "trigger_id": trigger_id,
        "status": SubscriptionStatus.ACTIVE.value, "paused_reason": None,
        "inputs": stored.plain, "sealed_inputs": stored.sealed,
        "webhook_url": body.webhookUrl, "interval_seconds": body.intervalSeconds or DEFAULT_INTERVAL_S,
        "backfill_since": datetime.fromisoformat(backfill.replace("Z", "+00:00")) if backfill else None,
        "signing_secret": keyring.seal(signing_secret, signing_context(subscription_id)),
        "previous_signing_secret": None, "previous_signing_secret_until": None,
        "last_poll_time": None, "seeded_at": None, "next_poll_at": now, "lease_epoch": 0, "lease_expires_at": None,
        "claimed_due_at": None,
        "last_polled_at": None, "last_succeeded_at": None, "consecutive_failures": 0, "failing_since": None,
        "consecutive_invalid_outputs": 0, "last_error": None, "delivery_failing_since": None,
        "created_at": now, "updated_at": now,
    }
    sealed = _sealed_secrets(keyring, subscription_id, body.secrets or {})
    if cached_version is None:
        await store.insert_subscription(engine, values, sealed, now)
    elif not await store_pg.insert_subscription(engine, cached_version, values, sealed, now):
        raise _TriggerChanged()
    names = [(n, now) for n in sorted(body.secrets or {})]
    return {"subscription": render(_Row(values), names), "signingSecret": signing_secret}


class _Row:
    """The values just inserted, read like a result row."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


async def get_subscription(
    engine: AsyncEngine, integration_id: uuid.UUID, trigger_id: uuid.UUID, subscription_id: uuid.UUID
) -> dict[str, Any]:
    found = await store.read_subscription(engine, integration_id, trigger_id, subscription_id)
    if found is None:
        raise SubscriptionNotFound()
    row, names = found
    return {"subscription": render(row, names[row.id])}


async def list_subscriptions(
    engine: AsyncEngine, integration_id: uuid.UUID, trigger_id: uuid.UUID, page: Page
) -> dict[str, Any]:
    after_id = None
    if page.after is not None:
        try:
            after_id = uuid.UUID(page.after.id)
        except ValueError:
            raise ValidationFailed.of([FieldError(field="cursor", message="is not a cursor returned by this list")]) from None
    rows, names = await store.list_subscriptions(engine, integration_id, trigger_id, page, after_id)
    if not rows and not await store.trigger_exists(engine, integration_id, trigger_id):
        raise TriggerNotFound()
    shown_rows = rows[: page.limit]
    more = len(rows) > page.limit
    return {
        "subscriptions": [render(r, names[r.id]) for r in shown_rows],
        "nextCursor": encode_cursor(shown_rows[-1].created_at, shown_rows[-1].id) if more else None,
    }


def _status_change(body: SubscriptionPatch, current: str) -> tuple[SubscriptionStatus | None, list[FieldError]]:
    if body.status is None or body.status.value == current:
        return None, []
    if body.status not in CHANGEABLE_STATUSES:
        return None, [FieldError(field="status", message="can only be changed to active or paused")]
    return body.status, []


async def update_subscription(
    engine: AsyncEngine, keyring: Keyring, rules: Rules,
    integration_id: uuid.UUID, trigger_id: uuid.UUID, subscription_id: uuid.UUID, body: SubscriptionPatch,
) -> dict[str, Any]:
    trigger = await load_runnable(engine, integration_id, trigger_id)
    remember_secrets(password_values_of(trigger.inputs, body.inputs or {}))
    changes = body.secrets if isinstance(body.secrets, dict) else None  # the list form is read-only
    early = _secret_errors(changes) + _interval_errors(body.intervalSeconds, rules)
    early += await _webhook_errors(body.webhookUrl, rules)
    now = utcnow()
    async with engine.begin() as conn:
        row = await store.lock_subscription(conn, integration_id, trigger_id, subscription_id)
        if row is None:
            raise SubscriptionNotFound()
        errors = list(early)
        values: dict[str, Any] = {"updated_at": now}
        target, status_errors = _status_change(body, row.status)
        errors += status_errors
        # Inputs sent back exactly as read are no change: a subscription paused because the trigger's
        # fields changed can still be read and sent back (to change its webhook, say) as it is.
        inputs_changed = body.inputs is not None and body.inputs != shown(row.inputs, row.sealed_inputs)
        if body.inputs is not None and inputs_changed:
            stored, input_problems = checked_inputs(
                trigger.inputs, body.inputs, keyring=keyring, subscription_id=row.id, kept=row.sealed_inputs
            )
            errors += input_problems
            if stored is not None:
                values.update(inputs=stored.plain, sealed_inputs=stored.sealed)
        elif target == SubscriptionStatus.ACTIVE:
            # Resuming runs on the stored inputs: the trigger's fields may have changed meanwhile.
            errors += stored_input_errors(trigger.inputs, row.inputs, row.sealed_inputs)
        if errors:
            raise ValidationFailed.of(errors)
        if body.webhookUrl is not None:
            values["webhook_url"] = body.webhookUrl
        if body.intervalSeconds is not None:
            values["interval_seconds"] = body.intervalSeconds
            if row.next_poll_at is not None:
                values["next_poll_at"] = min(as_utc(row.next_poll_at), now + timedelta(seconds=body.intervalSeconds))
        if target == SubscriptionStatus.ACTIVE:
            # Resumed: due at once, with the failure counts reset. `seeded_at` stays, so there is no
            # re-seed: the first poll covers the pause from the unchanged lastPollTime.
            values.update(
                status=target.value, paused_reason=None, next_poll_at=now, consecutive_failures=0,
                consecutive_invalid_outputs=0, failing_since=None, delivery_failing_since=None,
            )
            if row.status == SubscriptionStatus.DISABLED.value:
                await store.release_held_events(conn, row.id, now)
        elif target == SubscriptionStatus.PAUSED:
            values.update(status=target.value, paused_reason=None)
        if changes:
            sealed = _sealed_secrets(keyring, row.id, changes)
            deleted = [n for n, v in changes.items() if v is None]
            count = await store.merge_secrets(conn, row.id, sealed, deleted, now)
            if count > MAX_SECRETS:
                raise ValidationFailed.of([too_many(count)])
        await store.update_subscription(conn, row.id, values)
        updated = await store.lock_subscription(conn, integration_id, trigger_id, subscription_id)
        names = await store.secret_names(conn, [row.id])
    return {"subscription": render(updated, names[row.id])}


async def delete_subscription(
    engine: AsyncEngine, integration_id: uuid.UUID, trigger_id: uuid.UUID, subscription_id: uuid.UUID
) -> None:
    if not await store.delete_subscription(engine, integration_id, trigger_id, subscription_id):
        raise SubscriptionNotFound()


async def pause_invalid_subscriptions(engine: AsyncEngine, integration_id: uuid.UUID, trigger_id: uuid.UUID) -> int:
    """After a trigger's input fields changed: its active subscriptions whose stored inputs no longer
    validate become `paused_errors` with `inputs_invalid`. Returns how many."""
    try:
        trigger = await load_runnable(engine, integration_id, trigger_id)
    except TriggerNotFound:
        return 0
    invalid = [
        row.id for row in await store.active_inputs_of_trigger(engine, trigger_id)
        if stored_input_errors(trigger.inputs, row.inputs, row.sealed_inputs)
    ]
    if not invalid:
        return 0
    message = "The trigger's input fields changed and this subscription's inputs no longer fit them; "
    error = {"code": "inputs_invalid", "message": message + "PATCH valid inputs, then set status to active."}
    return await store.pause_for_errors(engine, invalid, "inputs_invalid", error, utcnow())
