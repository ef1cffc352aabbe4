"""All SQL of the subscription routes, as Core statements. The rules live in `service`."""

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NoReturn, cast

from sqlalchemy import Row, Table, delete, func, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..api.pagination import Page
from ..db.runtime_tables import Subscription, SubscriptionSecret, TriggerEvent
from ..db.sql import upsert_insert, violated_constraint
from ..db.tables import Trigger
from ..errors import TriggerNotFound

subscriptions = cast(Table, Subscription.__table__)
secrets = cast(Table, SubscriptionSecret.__table__)
triggers = cast(Table, Trigger.__table__)
events = cast(Table, TriggerEvent.__table__)

SecretNames = dict[uuid.UUID, list[tuple[str, datetime]]]


def raise_if_trigger_gone(exc: IntegrityError) -> NoReturn:
    """The trigger was deleted between its check and the insert: 404, as if it had been first."""
    name = violated_constraint(exc)
    if "fk_subscriptions_trigger_id" in name or "FOREIGN KEY" in name:
        raise TriggerNotFound() from None
    raise exc


def _scoped(integration_id: uuid.UUID, trigger_id: uuid.UUID) -> Any:
    return (subscriptions.c.integration_id == integration_id) & (subscriptions.c.trigger_id == trigger_id)


async def insert_subscription(
    engine: AsyncEngine, values: dict[str, Any], sealed_secrets: Mapping[str, str], now: datetime
) -> None:
    async with engine.begin() as conn:
        try:
            await conn.execute(insert(subscriptions).values(**values))
        except IntegrityError as exc:
            raise_if_trigger_gone(exc)
        if sealed_secrets:
            await conn.execute(
                insert(secrets),
                [{"subscription_id": values["id"], "name": n, "token": t, "updated_at": now} for n, t in sealed_secrets.items()],
            )


async def trigger_exists(engine: AsyncEngine, integration_id: uuid.UUID, trigger_id: uuid.UUID) -> bool:
    async with engine.connect() as conn:
        found = await conn.scalar(
            select(triggers.c.id).where(triggers.c.id == trigger_id, triggers.c.integration_id == integration_id)
        )
    return found is not None


async def secret_names(conn: AsyncConnection, subscription_ids: Sequence[uuid.UUID]) -> SecretNames:
    names: SecretNames = {sid: [] for sid in subscription_ids}
    if subscription_ids:
        rows = await conn.execute(
            select(secrets.c.subscription_id, secrets.c.name, secrets.c.updated_at)
            .where(secrets.c.subscription_id.in_(subscription_ids))
            .order_by(secrets.c.subscription_id, secrets.c.name)
        )
        for sid, name, updated_at in rows:
            names[sid].append((name, updated_at))
    return names


async def read_subscription(
    engine: AsyncEngine, integration_id: uuid.UUID, trigger_id: uuid.UUID, subscription_id: uuid.UUID
) -> tuple[Row[Any], SecretNames] | None:
    async with engine.connect() as conn:
        row = (await conn.execute(
            select(subscriptions).where(subscriptions.c.id == subscription_id, _scoped(integration_id, trigger_id))
        )).first()
        if row is None:
            return None
        return row, await secret_names(conn, [row.id])


async def list_subscriptions(
    engine: AsyncEngine, integration_id: uuid.UUID, trigger_id: uuid.UUID, page: Page, after_id: uuid.UUID | None
) -> tuple[Sequence[Row[Any]], SecretNames]:
    """One page, oldest first, plus one row that says whether there is a next page."""
    stmt = select(subscriptions).where(_scoped(integration_id, trigger_id))
    if page.after is not None and after_id is not None:
        stmt = stmt.where(tuple_(subscriptions.c.created_at, subscriptions.c.id) > tuple_(page.after.at, after_id))
    stmt = stmt.order_by(subscriptions.c.created_at, subscriptions.c.id).limit(page.limit + 1)
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
        return rows, await secret_names(conn, [r.id for r in rows[: page.limit]])


async def lock_subscription(
    conn: AsyncConnection, integration_id: uuid.UUID, trigger_id: uuid.UUID, subscription_id: uuid.UUID
) -> Row[Any] | None:
    """The row, locked until the transaction ends (SQLite's BEGIN IMMEDIATE already serializes writers)."""
    stmt = (
        select(subscriptions)
        .where(subscriptions.c.id == subscription_id, _scoped(integration_id, trigger_id))
        .with_for_update()
    )
    return (await conn.execute(stmt)).first()


async def update_subscription(conn: AsyncConnection, subscription_id: uuid.UUID, values: dict[str, Any]) -> None:
    await conn.execute(update(subscriptions).where(subscriptions.c.id == subscription_id).values(**values))


async def release_held_events(conn: AsyncConnection, subscription_id: uuid.UUID, now: datetime) -> None:
    """A subscription active again: the events held while it was disabled are due at once."""
    await conn.execute(
        update(events)
        .where(events.c.subscription_id == subscription_id, events.c.state == "pending", events.c.next_attempt_at.is_(None))
        .values(next_attempt_at=now)
    )


async def merge_secrets(
    conn: AsyncConnection, subscription_id: uuid.UUID, sealed: Mapping[str, str], deleted: Iterable[str], now: datetime
) -> int:
    """Apply a merge; returns how many secrets the subscription then holds."""
    names = list(deleted)
    if names:
        await conn.execute(delete(secrets).where(secrets.c.subscription_id == subscription_id, secrets.c.name.in_(names)))
    for name, token in sealed.items():
        stmt = upsert_insert(conn, secrets).values(subscription_id=subscription_id, name=name, token=token, updated_at=now)
        await conn.execute(stmt.on_conflict_do_update(
            index_elements=["subscription_id", "name"], set_={"token": token, "updated_at": now}
        ))
    count = await conn.scalar(select(func.count()).select_from(secrets).where(secrets.c.subscription_id == subscription_id))
    return int(count or 0)


async def delete_subscription(
    engine: AsyncEngine, integration_id: uuid.UUID, trigger_id: uuid.UUID, subscription_id: uuid.UUID
) -> bool:
    # Its secrets, poll runs, events (undelivered ones included: they are cancelled) and attempts go
    # with it through ON DELETE CASCADE.
    async with engine.begin() as conn:
        result = await conn.execute(
            delete(subscriptions).where(subscriptions.c.id == subscription_id, _scoped(integration_id, trigger_id))
        )
    return result.rowcount > 0


async def active_inputs_of_trigger(engine: AsyncEngine, trigger_id: uuid.UUID) -> Sequence[Any]:
    async with engine.connect() as conn:
        return (await conn.execute(
            select(subscriptions.c.id, subscriptions.c.inputs, subscriptions.c.sealed_inputs).where(
                subscriptions.c.trigger_id == trigger_id, subscriptions.c.status == "active"
            )
        )).all()


async def pause_for_errors(
    engine: AsyncEngine, ids: Sequence[uuid.UUID], reason: str, error: dict[str, Any], now: datetime
) -> int:
    """Pause the still-active ones among `ids`; returns how many."""
    if not ids:
        return 0
    async with engine.begin() as conn:
        result = await conn.execute(
            update(subscriptions)
            .where(subscriptions.c.id.in_(ids), subscriptions.c.status == "active")
            .values(status="paused_errors", paused_reason=reason, last_error=error, updated_at=now)
        )
    return result.rowcount
