"""Each process kind connects under its own name, and migrations wait for a lock instead of failing."""

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from odeus_triggers.config import Settings
from odeus_triggers.db.engine import make_engine
from odeus_triggers.db.migrate import MIGRATION_LOCK_ID

from support.helpers import admin_execute

CLI = str(Path(sys.executable).parent / "odeus-triggers")


@pytest.fixture
def postgres_only(is_postgres: bool) -> None:
    if not is_postgres:
        pytest.skip("application_name, statement_timeout and advisory locks are Postgres features")


async def _session_settings(url: str, kind: str) -> tuple[str, str, str]:
    engine = make_engine(Settings(database_url=url), kind=kind)  # type: ignore[arg-type]
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(text(
                "SELECT application_name, current_setting('statement_timeout'), current_setting('lock_timeout')"
                " FROM pg_stat_activity WHERE pid = pg_backend_pid()"
            ))).one()
        return tuple(row)  # type: ignore[return-value]
    finally:
        await engine.dispose()


async def test_each_kind_names_itself_in_pg_stat_activity(database_url, postgres_only):
    for kind in ("api", "worker", "cli"):
        assert await _session_settings(database_url, kind) == (f"odeus-triggers-{kind}", "5s", "0")
    # No statement timeout: an index build may run for minutes. The lock wait is bounded, and long.
    assert await _session_settings(database_url, "migrate") == ("odeus-triggers-migrate", "0", "10min")


async def test_the_app_connects_as_the_api(app, postgres_only):
    async with app.state.engine.connect() as conn:
        name = await conn.scalar(text("SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"))
    assert name == "odeus-triggers-api"


async def test_a_migrate_blocked_by_another_replica_waits_then_succeeds(database_url, postgres_only):
    name = f"odeus_lock_{uuid.uuid4().hex[:10]}"
    await admin_execute(database_url, f'CREATE DATABASE "{name}"')
    url = make_url(database_url).set(database=name)
    holder = await asyncpg.connect(host=url.host, port=url.port or 5432, user=url.username,
                                   password=url.password, database=name)
    proc = None
    try:
        # Advisory lock keys are per database: the holder must sit in the database being migrated.
        await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
        env = {**os.environ, "DATABASE_URL": url.render_as_string(hide_password=False)}
        proc = subprocess.Popen([CLI, "migrate"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        start = time.monotonic()
        await asyncio.sleep(7)  # past the API's 5 s statement timeout
        assert proc.poll() is None, proc.communicate()
        waiting = await holder.fetchval(
            "SELECT wait_event_type FROM pg_stat_activity WHERE application_name = 'odeus-triggers-migrate'"
            " AND datname = $1", name,
        )
        assert waiting == "Lock"
        await holder.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
        out, err = await asyncio.to_thread(proc.communicate, timeout=60)
        assert proc.returncode == 0, err
        assert "upgraded" in out and time.monotonic() - start >= 7
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        await holder.close()
        await admin_execute(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
