"""An app on a database of its own, migrated to head: for tests that count every row of a table,
which the session's shared database cannot promise (other tests add rows to it)."""

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from odeus_triggers.app import create_app
from odeus_triggers.config import Settings
from odeus_triggers.db.migrate import upgrade_to_head

from support.helpers import TEST_ENCRYPTION_KEY, admin_execute


def settings_for(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"database_url": database_url, "rate_limit": "100000/minute",
                              "rate_limit_unauthenticated": "100000/minute", "encryption_keys": TEST_ENCRYPTION_KEY,
                              "min_interval_seconds": 1, "embedded_worker": False, **overrides}
    return Settings(**values)


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield app, client


@asynccontextmanager
async def fresh_app(tmp_path: Path, **overrides: Any) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """Postgres when TEST_DATABASE_URL is set (a new database, dropped after), SQLite otherwise."""
    server = os.environ.get("TEST_DATABASE_URL")
    name = f"odeus_fresh_{uuid.uuid4().hex[:12]}"
    if server:
        await admin_execute(server, f'CREATE DATABASE "{name}"')
        url = make_url(server).set(database=name).render_as_string(hide_password=False)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / (name + '.db')}"
    try:
        settings = settings_for(url, **overrides)
        await upgrade_to_head(settings)
        async with serving(settings) as served:
            yield served
    finally:
        if server:
            await admin_execute(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
