"""The database: metadata with a naming convention, and the engine factory for SQLite or Postgres."""

from typing import Any, Literal

from sqlalchemy import Connection, MetaData, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from ..config import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _sqlite_lower(value: str | None) -> str | None:
    return value.lower() if value is not None else None


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver's implicit BEGIN is replaced by our own BEGIN IMMEDIATE below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        # SQLite's own lower() folds ASCII only; the unique name index must fold case the way
        # Postgres does, so that "École" and "école" collide on both.
        dbapi_connection.create_function("lower", 1, _sqlite_lower, deterministic=True)

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(conn: Connection) -> None:
        # Taking the write lock up front avoids SQLITE_BUSY on a read-to-write upgrade when
        # several requests write at once; busy_timeout then queues them.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _replace_closed_connections(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "checkout")
    def on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        # After a restart or failover every pooled connection is dead, and asyncpg has already
        # seen its socket close. Swapping it here costs no round trip (unlike pool_pre_ping) and
        # spares the first requests after the outage a 503.
        is_closed = getattr(dbapi_connection.driver_connection, "is_closed", None)  # asyncpg's
        if is_closed is not None and is_closed():
            raise DisconnectionError("connection closed by the server")


EngineKind = Literal["api", "worker", "migrate", "cli"]


def _server_settings(settings: Settings, kind: EngineKind) -> dict[str, str]:
    # application_name tells an operator reading pg_stat_activity which process holds a lock.
    values = {"application_name": f"odeus-triggers-{kind}"}
    if kind == "migrate":
        # An index build may take minutes and must not be cancelled halfway; a replica that starts
        # while another migrates waits on the advisory lock (lock_timeout bounds that wait)
        # instead of failing and crash-looping.
        values["statement_timeout"] = "0"
        values["lock_timeout"] = str(int(settings.migrate_lock_timeout_seconds * 1000))
    else:
        values["statement_timeout"] = str(int(settings.db_statement_timeout_seconds * 1000))
    return values


def make_engine(settings: Settings, kind: EngineKind = "api") -> AsyncEngine:
    url = settings.database_url.get_secret_value()
    if settings.is_sqlite:
        engine = create_async_engine(url, connect_args={"timeout": 10}, hide_parameters=True)
        _configure_sqlite(engine)
        return engine
    engine = create_async_engine(
        url,
        # Error messages would otherwise quote the bound values: request bodies, key digests.
        hide_parameters=True,
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_timeout=settings.db_connect_timeout_seconds,
        pool_recycle=1800,
        connect_args={
            "timeout": settings.db_connect_timeout_seconds,
            "command_timeout": None if kind == "migrate" else settings.db_statement_timeout_seconds,
            "server_settings": _server_settings(settings, kind),
        },
    )
    _replace_closed_connections(engine)
    return engine
