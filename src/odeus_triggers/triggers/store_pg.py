"""Create Trigger on Postgres in one round trip.

The generic path (BEGIN, INSERT trigger, INSERT fields, COMMIT) costs four round trips and the
SQL layer's statement machinery on every request. Here one prepared statement inserts the trigger
and its input fields through data-modifying CTEs: a single statement is atomic on its own, so it
needs no explicit transaction, and the driver's prepared-statement cache makes it a single
Bind/Execute exchange. The rules are the same as the generic path's: a slug collision inserts
nothing and is retried with the next suffix; a name collision fails the statement (409).
"""

import json
import uuid
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import String, bindparam
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from ..db.driver import raw_driver
from ..db.sql import is_outage, raise_for_constraint
from ..errors import ServiceUnavailable
from . import store

CREATE_SQL = """
WITH new_trigger AS (
    INSERT INTO triggers (id, integration_id, name, slug, description, type, polling_code, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
    ON CONFLICT (integration_id, slug) DO NOTHING
    RETURNING id
), new_fields AS (
    INSERT INTO trigger_input_fields
        (id, trigger_id, position, slug, label, type, description, placeholder, required, options, allow_multi_select)
    SELECT f.id, t.id, f.position, f.slug, f.label, f.type, f.description, f.placeholder, f.required,
           f.options::jsonb, f.allow_multi_select
    FROM new_trigger t,
         unnest($9::uuid[], $10::int[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
                $16::bool[], $17::text[], $18::bool[])
         AS f(id, position, slug, label, type, description, placeholder, required, options, allow_multi_select)
)
SELECT id FROM new_trigger
"""

# The store's query, compiled once for the raw driver ($1, $2, … in `positiontup` order).
_TAKEN_SLUGS = store.taken_slugs_query(bindparam("integration_id"), bindparam("base", type_=String)).compile(
    dialect=asyncpg_dialect()
)
TAKEN_SLUGS_SQL = str(_TAKEN_SLUGS)

# The columns of CREATE_SQL's unnest(), in its order.
_FIELD_COLUMNS = (
    "id", "position", "slug", "label", "type", "description", "placeholder", "required", "options",
    "allow_multi_select",
)


def field_columns(trigger_id: uuid.UUID, input_fields: list[dict[str, Any]]) -> list[list[Any]]:
    """The store's field rows, column by column, for unnest(); options as JSON text for the ::jsonb cast."""
    rows = store.field_rows(trigger_id, input_fields)
    for row in rows:
        row["options"] = json.dumps(row["options"]) if row["options"] is not None else None
    return [[row[name] for row in rows] for name in _FIELD_COLUMNS]


async def insert_once(
    driver: asyncpg.Connection,
    trigger_id: uuid.UUID,
    integration_id: uuid.UUID,
    slug: str,
    values: dict[str, Any],
    now: datetime,
    columns: list[list[Any]],
) -> bool:
    try:
        row = await driver.fetchrow(
            CREATE_SQL, trigger_id, integration_id, values["name"], slug, values["description"],
            values["type"], values["polling_code"], now, *columns,
        )
    except (asyncpg.UniqueViolationError, asyncpg.ForeignKeyViolationError) as exc:
        raise_for_constraint(exc)
    return row is not None


async def taken_slugs(driver: asyncpg.Connection, integration_id: uuid.UUID, base: str) -> list[str]:
    params = _TAKEN_SLUGS.construct_params({"integration_id": integration_id, "base": base})
    rows = await driver.fetch(TAKEN_SLUGS_SQL, *(params[name] for name in _TAKEN_SLUGS.positiontup or ()))
    return [r["slug"] for r in rows]


async def with_driver(engine: AsyncEngine, work: Any) -> Any:
    """Run `work(asyncpg_connection)` on a pooled connection, outside any explicit transaction; an
    outage is a 503."""
    try:
        async with raw_driver(engine) as driver:
            return await work(driver)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        if not is_outage(exc):
            raise
        raise ServiceUnavailable() from None


async def create_trigger(
    engine: AsyncEngine, trigger_id: uuid.UUID, integration_id: uuid.UUID, values: dict[str, Any],
    input_fields: list[dict[str, Any]], now: datetime, choose_slug: store.SlugChooser,
) -> str:
    """As `store.create_trigger`, in one round trip per attempt."""
    columns = field_columns(trigger_id, input_fields)

    async def work(driver: asyncpg.Connection) -> str:
        return await choose_slug(
            lambda slug: insert_once(driver, trigger_id, integration_id, slug, values, now, columns),
            lambda base: taken_slugs(driver, integration_id, base),
        )

    return await with_driver(engine, work)
