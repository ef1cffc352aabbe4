"""Whether the caller may use `{integrationId}`: 404 if absent, 403 if not theirs."""

import time
import uuid

from cachetools import TTLCache
from fastapi import Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ..auth.caller import Caller
from ..db.tables import Integration
from ..errors import IntegrationForbidden, IntegrationNotFound


class IntegrationDirectory:
    """Which workspace owns an integration. Ownership never changes, so positive answers are cached."""

    def __init__(self, engine: AsyncEngine, ttl: float = 60.0) -> None:
        self._engine = engine
        self._owners: TTLCache[uuid.UUID, uuid.UUID] = TTLCache(maxsize=50_000, ttl=ttl, timer=time.monotonic)

    async def owner_of(self, integration_id: uuid.UUID) -> uuid.UUID | None:
        owner = self._owners.get(integration_id)
        if owner is None:
            async with self._engine.connect() as conn:
                owner = await conn.scalar(
                    select(Integration.workspace_id).where(Integration.id == integration_id)
                )
            if owner is not None:
                self._owners[integration_id] = owner
        return owner


def check_access(owner: uuid.UUID | None, workspace_id: uuid.UUID) -> None:
    """404 for an integration that does not exist, 403 for one of another workspace."""
    if owner is None:
        raise IntegrationNotFound()
    if owner != workspace_id:
        raise IntegrationForbidden()


async def authorize_integration(caller: Caller, integration_id: uuid.UUID, request: Request) -> uuid.UUID:
    check_access(await request.app.state.integrations.owner_of(integration_id), caller.workspace_id)
    return integration_id
