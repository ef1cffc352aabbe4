"""The one outage rule and the one constraint map see the driver's errors bare (the one-round-trip
create on Postgres) as they see them wrapped by SQLAlchemy (every other path), and agree."""

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError

from odeus_triggers.db.sql import is_outage, raise_for_constraint
from odeus_triggers.db.tables import NAME_INDEX
from odeus_triggers.errors import IntegrationNotFound, TriggerNameConflict


def _pg(kind: type[asyncpg.PostgresError], **fields: str) -> asyncpg.PostgresError:
    exc = kind("from the server")
    for name, value in fields.items():
        setattr(exc, name, value)
    return exc


READ_ONLY = _pg(asyncpg.ReadOnlySQLTransactionError)
UNDEFINED_TABLE = _pg(asyncpg.UndefinedTableError)


@pytest.mark.parametrize(
    "exc, outage",
    [
        (READ_ONLY, True),
        (DBAPIError("INSERT", None, READ_ONLY), True),
        (_pg(asyncpg.AdminShutdownError), True),
        (_pg(asyncpg.QueryCanceledError), True),  # statement_timeout
        (asyncpg.InterfaceError("connection is closed"), True),
        (TimeoutError(), True),
        (UNDEFINED_TABLE, False),
        (DBAPIError("SELECT", None, UNDEFINED_TABLE), False),
    ],
    ids=["read-only", "read-only-wrapped", "admin-shutdown", "statement-timeout", "closed", "timeout",
         "undefined-table", "undefined-table-wrapped"],
)
def test_outage_rule_bare_and_wrapped(exc, outage):
    assert is_outage(exc) is outage


@pytest.mark.parametrize(
    "exc, error",
    [
        (_pg(asyncpg.UniqueViolationError, constraint_name=NAME_INDEX), TriggerNameConflict),
        (IntegrityError("INSERT", None, _pg(asyncpg.UniqueViolationError, constraint_name=NAME_INDEX)),
         TriggerNameConflict),
        (_pg(asyncpg.ForeignKeyViolationError, constraint_name="fk_triggers_integration_id_integrations"),
         IntegrationNotFound),
        (IntegrityError("INSERT", None, Exception("FOREIGN KEY constraint failed")), IntegrationNotFound),
        (IntegrityError("INSERT", None, Exception("UNIQUE constraint failed: index 'lower(name)'")),
         TriggerNameConflict),
    ],
    ids=["name-bare", "name-wrapped", "fk-bare", "fk-sqlite", "name-sqlite"],
)
def test_constraint_map(exc, error):
    with pytest.raises(error):
        raise_for_constraint(exc)


def test_an_unknown_constraint_is_raised_as_it_is():
    exc = _pg(asyncpg.UniqueViolationError, constraint_name="pk_triggers")
    with pytest.raises(asyncpg.UniqueViolationError):
        raise_for_constraint(exc)
