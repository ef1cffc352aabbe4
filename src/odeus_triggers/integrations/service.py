"""Integrations: create and read."""

import uuid
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from ..dbutil import as_utc, utcnow
from ..models import Integration

integrations = Integration.__table__


def render_integration(row: Any) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "name": row.name,
        "description": row.description,
        "createdAt": as_utc(row.created_at).isoformat().replace("+00:00", "Z"),
    }


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
