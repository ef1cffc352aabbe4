"""At rest (RUNTIME.md, "Secrets"): a dump of the database holds no secret in plain text, after
every route that takes one has stored its values. No assertion message here names a value."""

import subprocess
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from support.helpers import client_of, make_tenant
from support.secret_scenario import leaks, walk

PG_DUMP = "/usr/bin/pg_dump"


@pytest.fixture
def dump_database(database_url: str, is_postgres: bool):
    if not is_postgres:
        pytest.skip("pg_dump needs Postgres: run with TEST_DATABASE_URL (the SQLite file is checked below)")
    if not Path(PG_DUMP).exists():
        pytest.skip(f"{PG_DUMP} is not installed")
    libpq_url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)

    def dump() -> str:
        done = subprocess.run([PG_DUMP, "--data-only", libpq_url], capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
        return done.stdout.decode(errors="replace")

    return dump


async def test_a_data_dump_holds_no_secret_value(app, dump_database):
    tenant = await make_tenant(app)
    async with client_of(app) as client:
        w = await walk(client, tenant)
    dump = dump_database()
    # Non-trivial: the rows this walk wrote are there, so a value stored in plain text would be too.
    written = w.subscription_id in dump and tenant.integration_id in dump and "subscription_secrets" in dump
    assert written, "the dump does not hold the walk's rows"
    found = leaks(w.all_values(), dump)
    assert not found, f"secret values in the dump in plain text: {found}"


async def test_a_data_dump_holds_no_signing_secret_after_an_idempotent_create(app, dump_database):
    # The stored answer of an idempotent create, kept for its replay, shows the signing secret.
    tenant = await make_tenant(app)
    async with client_of(app) as client:
        w = await walk(client, tenant, **{"Idempotency-Key": "redaction-at-rest-1"})
    dump = dump_database()
    written = w.subscription_id in dump
    assert written, "the dump does not hold the walk's rows"
    found = leaks(w.all_values(), dump)
    assert not found, f"secret values in the dump in plain text: {found}"


async def test_the_sqlite_file_holds_no_secret_value(app, database_url, is_postgres):
    if is_postgres:
        pytest.skip("the Postgres dump is checked above")
    tenant = await make_tenant(app)
    async with client_of(app) as client:
        w = await walk(client, tenant)
    database = Path(make_url(database_url).database or "")
    files = [str(p) for p in (database, database.with_name(database.name + "-wal")) if p.exists()]
    # Read by another process: closing any descriptor of the file in this one would drop SQLite's
    # POSIX locks on it (they are per process), and the app's connections would corrupt it.
    raw = subprocess.run(["cat", *files], capture_output=True, check=True, timeout=60).stdout
    # Non-trivial: the subscription's row is there, in whichever form the UUID column stores it.
    hex_id = w.subscription_id.replace("-", "")
    assert any(form in raw for form in (w.subscription_id.encode(), hex_id.encode(), bytes.fromhex(hex_id)))
    found = leaks(w.all_values(), raw.decode("latin-1"))
    assert not found, f"secret values in the database file in plain text: {found}"
