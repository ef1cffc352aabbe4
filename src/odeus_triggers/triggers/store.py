"""All SQL of triggers, as Core statements; `store_pg` is the one-round-trip create on Postgres.

The rules (slugs, defaults, what a collision means for the caller) live in `service`: these
functions only read and write rows.
"""

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Table, delete, insert, select, update
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
