"""The migrations build exactly the schema the models describe, on SQLite and on Postgres."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from odeus_triggers.db.engine import Base


async def test_models_and_migrations_agree(app):
    def diff(connection):
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)

    async with app.state.engine.connect() as conn:
        differences = await conn.run_sync(diff)
    assert differences == []


async def test_the_case_insensitive_name_index_exists(app, is_postgres):
    def indexes(connection):
        if is_postgres:
            rows = connection.exec_driver_sql(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'uq_triggers_integration_id_lower_name'"
            ).all()
        else:
            rows = connection.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE name = 'uq_triggers_integration_id_lower_name'"
            ).all()
        return [r[0] for r in rows]

    async with app.state.engine.connect() as conn:
        [definition] = await conn.run_sync(indexes)
    compact = definition.replace("(", "").replace(")", "").replace("::text", "")
    assert "UNIQUE" in definition.upper() and "integration_id, lowername" in compact


async def test_input_fields_go_with_their_trigger(app):
    def foreign_keys(connection):
        return inspect(connection).get_foreign_keys("trigger_input_fields")

    async with app.state.engine.connect() as conn:
        [fk] = await conn.run_sync(foreign_keys)
    assert fk["referred_table"] == "triggers"
    assert fk["options"].get("ondelete") == "CASCADE"
