"""Bringing the database to the latest revision, safely when several replicas start at once."""

from importlib.resources import files
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from ..config import Settings
from .engine import make_engine

# An arbitrary constant: every replica takes the same Postgres advisory lock while migrating.
MIGRATION_LOCK_ID = 0x0DE05_7216


def migrations_dir() -> Path:
    # Only the package's own copy: a migrations/ folder in the working directory may belong to
    # another project, and running its env.py would report success on the wrong schema.
    folder = files("odeus_triggers.db").joinpath("migrations")
    path = Path(str(folder))
    if not (path / "env.py").is_file():
        raise RuntimeError("odeus_triggers/db/migrations is missing from the installed package; reinstall it")
    return path


def alembic_config(settings: Settings) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["settings"] = settings
    cfg.attributes["configure_logging"] = False
    return cfg


def _upgrade(connection: Connection, cfg: Config) -> None:
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


def _pending(connection: Connection, cfg: Config) -> bool:
    head = ScriptDirectory.from_config(cfg).get_current_head()
    return MigrationContext.configure(connection).get_current_revision() != head


async def upgrade_to_head(settings: Settings) -> bool:
    """Apply pending revisions; returns whether anything was applied."""
    cfg = alembic_config(settings)
    engine = make_engine(settings, kind="migrate")
    try:
        async with engine.connect() as conn:
            postgres = conn.dialect.name == "postgresql"
            if postgres:
                await conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
                await conn.commit()
            try:
                pending = await conn.run_sync(_pending, cfg)
                if pending:
                    await conn.run_sync(_upgrade, cfg)
                await conn.commit()
            finally:
                if postgres:
                    await conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
                    await conn.commit()
        return pending
    finally:
        await engine.dispose()
