"""Integrations: create and read."""

import uuid
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ..db.tables import Integration, Trigger
from ..timestamps import iso_z, utcnow
from .access import check_access

# Declarative types __table__ as any FromClause; these are Tables (insert needs one).
integrations = cast(Table, Integration.__table__)
triggers = cast(Table, Trigger.__table__)


def render_integration(row: Any) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "name": row.name,
        "description": row.description,
        "createdAt": iso_z(row.created_at),
    }


def render_trigger_summary(row: Any) -> dict[str, Any]:
    return {"id": str(row.id), "name": row.name, "slug": row.slug, "description": row.description, "type": row.type}


async def create_integration(
    engine: AsyncEngine, workspace_id: uuid.UUID, name: str, description: str | None
) -> dict[str, Any]:
    values = {
        "id": uuid.uuid4(),
        "workspace_id": workspace_id,
        "name": name,
        "description": description or "",
        "created_at": utcnow(),
    }
    async with engine.begin() as conn:
        await conn.execute(insert(integrations).values(**values))
    return render_integration(type("Row", (), values))


async def list_integrations(engine: AsyncEngine, workspace_id: uuid.UUID) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(integrations)
            .where(integrations.c.workspace_id == workspace_id)
            .order_by(integrations.c.created_at, integrations.c.id)
        )
        return [render_integration(row) for row in rows]


async def read_integration(
    engine: AsyncEngine, integration_id: uuid.UUID, workspace_id: uuid.UUID
) -> dict[str, Any]:
    """The integration with a summary of its triggers, in two queries; 404 or 403 if not the caller's."""
    async with engine.connect() as conn:
        row = (await conn.execute(select(integrations).where(integrations.c.id == integration_id))).first()
        check_access(row.workspace_id if row is not None else None, workspace_id)
        trigger_rows = await conn.execute(
            select(triggers.c.id, triggers.c.name, triggers.c.slug, triggers.c.description, triggers.c.type)
            .where(triggers.c.integration_id == integration_id)
            .order_by(triggers.c.created_at, triggers.c.id)
        )
        summaries = [render_trigger_summary(t) for t in trigger_rows]
    return {**render_integration(row), "triggers": summaries}
