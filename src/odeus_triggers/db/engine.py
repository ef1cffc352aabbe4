"""The database: metadata with a naming convention, and the engine factory for SQLite or Postgres."""

from sqlalchemy import MetaData, event
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
    def on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
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
    def on_begin(conn):  # type: ignore[no-untyped-def]
        # Taking the write lock up front avoids SQLITE_BUSY on a read-to-write upgrade when
        # several requests write at once; busy_timeout then queues them.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _replace_closed_connections(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "checkout")
    def on_checkout(dbapi_connection, _record, _proxy):  # type: ignore[no-untyped-def]
        # After a restart or failover every pooled connection is dead, and asyncpg has already
        # seen its socket close. Swapping it here costs no round trip (unlike pool_pre_ping) and
        # spares the first requests after the outage a 503.
        is_closed = getattr(dbapi_connection.driver_connection, "is_closed", None)  # asyncpg's
        if is_closed is not None and is_closed():
            raise DisconnectionError("connection closed by the server")


def make_engine(settings: Settings) -> AsyncEngine:
    url = settings.database_url.get_secret_value()
    if settings.is_sqlite:
        engine = create_async_engine(url, connect_args={"timeout": 10}, hide_parameters=True)
        _configure_sqlite(engine)
        return engine
    statement_ms = int(settings.db_statement_timeout_seconds * 1000)
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
            "command_timeout": settings.db_statement_timeout_seconds,
            "server_settings": {
                "statement_timeout": str(statement_ms),
                "application_name": "odeus-triggers",
            },
        },
    )
    _replace_closed_connections(engine)
    return engine
