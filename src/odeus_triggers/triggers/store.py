"""All SQL of triggers, as Core statements; `store_pg` is the one-round-trip create on Postgres.

The rules (slugs, defaults, what a collision means for the caller) live in `service`: these
functions only read and write rows.
"""

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Table, delete, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..db.sql import raise_for_constraint, upsert_insert
from ..db.tables import Trigger, TriggerInputField

# Declarative types __table__ as any FromClause; these are Tables (insert/update/delete need one).
triggers = cast(Table, Trigger.__table__)
fields = cast(Table, TriggerInputField.__table__)

InsertAs = Callable[[str], Awaitable[bool]]
TakenSlugs = Callable[[str], Awaitable[list[str]]]
# Picks the slug: tries `insert_as(slug)` (False on a slug collision), asking `taken_slugs(base)`
# for a hint in between. Given by the service, which owns the slug rules.
SlugChooser = Callable[[InsertAs, TakenSlugs], Awaitable[str]]


def field_rows(trigger_id: uuid.UUID, input_fields: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The trigger_input_fields rows of a trigger's input fields (as the API shows them), in order."""
    return [
        {
            "id": uuid.uuid4(),
            "trigger_id": trigger_id,
            "position": position,
            "slug": f["slug"],
            "label": f["label"],
            "type": f["type"],
            "description": f["description"],
            "placeholder": f["placeholder"],
            "required": f["required"],
            "options": f["options"],
            "allow_multi_select": f["allowMultiSelect"],
        }
        for position, f in enumerate(input_fields)
    ]


def taken_slugs_query(integration_id: Any, base: Any) -> Any:
    """The slugs `base` and `base-…` of an integration. Also compiled with bind parameters for
    the raw driver, so `base + "-%"` must stay valid for a column expression as for a string."""
    return select(triggers.c.slug).where(
        triggers.c.integration_id == integration_id,
        (triggers.c.slug == base) | triggers.c.slug.like(base + "-%"),
    )


async def _insert_fields(conn: AsyncConnection, trigger_id: uuid.UUID, input_fields: list[dict[str, Any]]) -> None:
    if input_fields:
        await conn.execute(insert(fields), field_rows(trigger_id, input_fields))


async def create_trigger(
    engine: AsyncEngine, trigger_id: uuid.UUID, integration_id: uuid.UUID, values: dict[str, Any],
    input_fields: list[dict[str, Any]], now: datetime, choose_slug: SlugChooser,
) -> str:
    """Insert the trigger and its fields in one transaction; returns the slug it got."""
    async with engine.begin() as conn:
        stmt_base = upsert_insert(conn, triggers)

        async def insert_as(slug: str) -> bool:
            stmt = (
                stmt_base.values(
                    id=trigger_id, integration_id=integration_id, slug=slug, created_at=now, updated_at=now, **values
                )
                .on_conflict_do_nothing(index_elements=["integration_id", "slug"])
                .returning(triggers.c.id)
            )
            try:
                return (await conn.execute(stmt)).first() is not None
            except IntegrityError as exc:
                raise_for_constraint(exc)

        async def taken_slugs(base: str) -> list[str]:
            return [slug for (slug,) in await conn.execute(taken_slugs_query(integration_id, base))]

        slug = await choose_slug(insert_as, taken_slugs)
        await _insert_fields(conn, trigger_id, input_fields)
    return slug


async def update_trigger(
    engine: AsyncEngine, integration_id: uuid.UUID, trigger_id: uuid.UUID, values: dict[str, Any],
    input_fields: list[dict[str, Any]], now: datetime,
) -> Row[Any] | None:
    """Replace the trigger's values and fields; its (slug, created_at), or None if there is no such trigger."""
    async with engine.begin() as conn:
        stmt = (
            update(triggers)
            .where(triggers.c.id == trigger_id, triggers.c.integration_id == integration_id)
            .values(updated_at=now, **values)
            .returning(triggers.c.slug, triggers.c.created_at)
        )
        try:
            row = (await conn.execute(stmt)).first()
        except IntegrityError as exc:
            raise_for_constraint(exc)
        if row is None:
            return None
        await conn.execute(delete(fields).where(fields.c.trigger_id == trigger_id))
        await _insert_fields(conn, trigger_id, input_fields)
    return row


async def delete_trigger(engine: AsyncEngine, integration_id: uuid.UUID, trigger_id: uuid.UUID) -> bool:
    # The input fields go with it through the foreign key's ON DELETE CASCADE.
    async with engine.begin() as conn:
        result = await conn.execute(
            delete(triggers).where(triggers.c.id == trigger_id, triggers.c.integration_id == integration_id)
        )
    return result.rowcount > 0


async def runnable_rows(engine: AsyncEngine, integration_id: uuid.UUID, trigger_id: uuid.UUID) -> Sequence[Any]:
    """The trigger's code with each of its input fields, in one query: one row per field (one row
    with null field columns when it has none), none if there is no such trigger."""
    stmt = (
        select(
            triggers.c.polling_code,
            triggers.c.updated_at,
            fields.c.slug,
            fields.c.type,
            fields.c.required,
            fields.c.options,
            fields.c.allow_multi_select,
        )
        .select_from(triggers.outerjoin(fields, fields.c.trigger_id == triggers.c.id))
        .where(triggers.c.id == trigger_id, triggers.c.integration_id == integration_id)
        .order_by(fields.c.position)
    )
    async with engine.connect() as conn:
        return (await conn.execute(stmt)).all()


async def _fields_of(conn: AsyncConnection, trigger_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Row[Any]]]:
    """The input field rows of these triggers, each trigger's in order."""
    by_trigger: dict[uuid.UUID, list[Row[Any]]] = {trigger_id: [] for trigger_id in trigger_ids}
    if trigger_ids:
        rows = await conn.execute(
            select(fields).where(fields.c.trigger_id.in_(trigger_ids)).order_by(fields.c.trigger_id, fields.c.position)
        )
        for row in rows:
            by_trigger[row.trigger_id].append(row)
    return by_trigger


async def read_trigger(
    engine: AsyncEngine, integration_id: uuid.UUID, trigger_id: uuid.UUID
) -> tuple[Row[Any], list[Row[Any]]] | None:
    """The trigger's row and its input field rows in order, or None if there is no such trigger."""
    async with engine.connect() as conn:
        row = (await conn.execute(
            select(triggers).where(triggers.c.id == trigger_id, triggers.c.integration_id == integration_id)
        )).first()
        if row is None:
            return None
        return row, (await _fields_of(conn, [row.id]))[row.id]


async def list_triggers(
    engine: AsyncEngine, integration_id: uuid.UUID, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> tuple[Sequence[Row[Any]], dict[uuid.UUID, list[Row[Any]]]]:
    """Up to `limit + 1` triggers after `after` (created_at, id), oldest first, with the input
    field rows of the first `limit`: the extra row only says that there is a next page."""
    stmt = select(triggers).where(triggers.c.integration_id == integration_id)
    if after is not None:
        stmt = stmt.where(tuple_(triggers.c.created_at, triggers.c.id) > tuple_(*after))
    stmt = stmt.order_by(triggers.c.created_at, triggers.c.id).limit(limit + 1)
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
        return rows, await _fields_of(conn, [r.id for r in rows[:limit]])
