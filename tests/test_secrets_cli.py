"""The encryption keys of the secrets at rest, as an operator handles them: `secrets generate-key`,
`secrets rotate` and the checks of `serve`, run as real processes on a real database."""

import asyncio
import contextlib
import os
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Table, delete, insert, select

from odeus_triggers.auth import admin
from odeus_triggers.config import Settings
from odeus_triggers.db.engine import make_engine
from odeus_triggers.db.runtime_tables import IntegrationSecret, Subscription, SubscriptionSecret
from odeus_triggers.db.tables import IdempotencyRecord, Trigger
from odeus_triggers.integrations.service import create_integration
from odeus_triggers.secretbox import Keyring, generate_key
from odeus_triggers.timestamps import utcnow

from support.helpers import cli_command, free_port, fresh_postgres_database, served

integration_secrets = cast(Table, IntegrationSecret.__table__)
subscription_secrets = cast(Table, SubscriptionSecret.__table__)
subscriptions = cast(Table, Subscription.__table__)
triggers = cast(Table, Trigger.__table__)
idempotency_records = cast(Table, IdempotencyRecord.__table__)

# More integration secrets than one batch of the rotation reads (sealed.BATCH_SIZE = 500), over two
# integrations, so that paging crosses both columns of their primary key.
SECRETS_PER_INTEGRATION = 600

CANARY_REFUSAL = "none of the keys in the keyring can decrypt the secrets stored in this database"


def env_for(database_url: str, keys: str | None) -> dict[str, str]:
    """The environment of an operator's shell: this database, and exactly these keys (or none)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "ODEUS_ENCRYPTION_KEYS")}
    env["DATABASE_URL"] = database_url
    if keys is not None:
        env["ODEUS_ENCRYPTION_KEYS"] = keys
    return env


def cli(database_url: str, keys: str | None, *args: str) -> subprocess.CompletedProcess:
    # `serve` that wrongly starts would run until the timeout, which then fails the test.
    return subprocess.run(cli_command(*args), env=env_for(database_url, keys), capture_output=True, text=True,
                          timeout=60)


def assert_ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("odeus-triggers: error:") and fragment in lines[0], lines[0]
    return lines[0]


def assert_never_shown(result: subprocess.CompletedProcess, *values: str) -> None:
    shown = result.stdout + result.stderr
    leaked = [n for n, v in enumerate(values) if v in shown]
    assert not leaked, f"the output shows value(s) number {leaked}"  # never the values themselves


def serve_args() -> list[str]:
    return ["serve", "--host", "127.0.0.1", "--port", str(free_port())]


@contextlib.contextmanager
def fresh_database(database_url: str, is_postgres: bool, tmp_path: Path) -> Iterator[str]:
    if is_postgres:
        with fresh_postgres_database(database_url, prefix="odeus_keys") as url:
            yield url
    else:
        yield f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}"


def settings_of(url: str) -> Settings:
    return Settings(database_url=url)  # type: ignore[arg-type]


async def write_sealed_values(url: str, keyring: Keyring) -> dict[tuple[str, str], tuple[str, str]]:
    """Integrations, a trigger and two subscriptions with every kind of sealed value, inserted as
    the service stores them; returns {(table, row context): (token, value)}."""
    engine = make_engine(settings_of(url), kind="cli")
    sealed: dict[tuple[str, str], tuple[str, str]] = {}

    def seal(table: str, context: str) -> str:
        value = f"value-{uuid.uuid4().hex}"
        token = keyring.seal(value, context)
        sealed[(table, context)] = (token, value)
        return token

    try:
        workspace_id = await admin.ensure_workspace(engine, f"keys-{uuid.uuid4().hex[:8]}")
        integration_ids = [uuid.UUID((await create_integration(engine, workspace_id, f"I{n}", None))["id"])
                           for n in range(2)]
        now = utcnow()
        trigger_id = uuid.uuid4()
        key = await admin.create_key(engine, workspace_id, [])
        async with engine.begin() as conn:
            await conn.execute(insert(triggers).values(
                id=trigger_id, integration_id=integration_ids[0], name="New issue", slug="new_issue", description="",
                type="POLLING", polling_code="export default async () => []", created_at=now, updated_at=now,
            ))
            await conn.execute(insert(integration_secrets), [
                {"integration_id": i, "name": f"SECRET_{n}", "updated_at": now,
                 "token": seal("integration_secrets", f"integration-secret:{i}:SECRET_{n}")}
                for i in integration_ids for n in range(SECRETS_PER_INTEGRATION)
            ])
            for previous in (True, False):
                sub_id = uuid.uuid4()
                await conn.execute(insert(subscriptions).values(
                    id=sub_id, workspace_id=workspace_id, integration_id=integration_ids[0], trigger_id=trigger_id,
                    status="active", inputs={"projectId": "p1"},
                    sealed_inputs={s: seal("subscriptions", f"subscription-input:{sub_id}:{s}") for s in ("a", "b")},
                    webhook_url="https://example.com/hook", interval_seconds=300,
                    signing_secret=seal("subscriptions", f"signing-secret:{sub_id}"),
                    previous_signing_secret=seal("subscriptions", f"previous-signing-secret:{sub_id}") if previous else None,
                    lease_epoch=0, consecutive_failures=0, consecutive_invalid_outputs=0, created_at=now, updated_at=now,
                ))
                await conn.execute(insert(subscription_secrets).values(
                    subscription_id=sub_id, name="API_TOKEN", updated_at=now,
                    token=seal("subscription_secrets", f"subscription-secret:{sub_id}:API_TOKEN"),
                ))
            # The stored answer of an idempotent create: rotated too, but not counted as a secret.
            record_id = uuid.uuid4()
            answer = keyring.seal(f"answer-{uuid.uuid4().hex}", f"idempotency-response:{record_id}")
            await conn.execute(insert(idempotency_records).values(
                id=record_id, api_key_id=key.id, key="k", fingerprint="f", status=201, response_body=answer,
                created_at=now, expires_at=now,
            ))
    finally:
        await engine.dispose()
    return sealed


async def read_answers(url: str) -> dict[str, str]:
    engine = make_engine(settings_of(url), kind="cli")
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(select(idempotency_records.c.id, idempotency_records.c.response_body))
            return {f"idempotency-response:{i}": body for i, body in rows}
    finally:
        await engine.dispose()


async def read_tokens(url: str) -> dict[tuple[str, str], str]:
    """Every stored token by the same keys as write_sealed_values, read back from the database."""
    engine = make_engine(settings_of(url), kind="cli")
    tokens: dict[tuple[str, str], str] = {}
    try:
        async with engine.connect() as conn:
            for i, name, token in await conn.execute(select(
                    integration_secrets.c.integration_id, integration_secrets.c.name, integration_secrets.c.token)):
                tokens[("integration_secrets", f"integration-secret:{i}:{name}")] = token
            for s, name, token in await conn.execute(select(
                    subscription_secrets.c.subscription_id, subscription_secrets.c.name, subscription_secrets.c.token)):
                tokens[("subscription_secrets", f"subscription-secret:{s}:{name}")] = token
            for s, signing, previous, inputs in await conn.execute(select(
                    subscriptions.c.id, subscriptions.c.signing_secret, subscriptions.c.previous_signing_secret,
                    subscriptions.c.sealed_inputs)):
                tokens[("subscriptions", f"signing-secret:{s}")] = signing
                if previous is not None:
                    tokens[("subscriptions", f"previous-signing-secret:{s}")] = previous
                for slug, token in inputs.items():
                    tokens[("subscriptions", f"subscription-input:{s}:{slug}")] = token
    finally:
        await engine.dispose()
    return tokens


async def insert_foreign_secret(url: str, stranger: Keyring) -> uuid.UUID:
    """An integration secret sealed with a key that the keyring has never had."""
    engine = make_engine(settings_of(url), kind="cli")
    try:
        workspace_id = await admin.ensure_workspace(engine, f"keys-{uuid.uuid4().hex[:8]}")
        integration_id = uuid.UUID((await create_integration(engine, workspace_id, "Foreign", None))["id"])
        async with engine.begin() as conn:
            await conn.execute(insert(integration_secrets).values(
                integration_id=integration_id, name="FOREIGN", updated_at=utcnow(),
                token=stranger.seal("foreign-value", f"integration-secret:{integration_id}:FOREIGN"),
            ))
    finally:
        await engine.dispose()
    return integration_id


async def delete_integration_secrets_of(url: str, integration_id: uuid.UUID) -> None:
    engine = make_engine(settings_of(url), kind="cli")
    try:
        async with engine.begin() as conn:
            await conn.execute(delete(integration_secrets).where(integration_secrets.c.integration_id == integration_id))
    finally:
        await engine.dispose()


def test_rotation_end_to_end(database_url, is_postgres, tmp_path):
    key_a, key_b = generate_key(), generate_key()
    with fresh_database(database_url, is_postgres, tmp_path) as url:
        assert_ok(cli(url, None if is_postgres else key_a, "migrate"))
        # The first start under A writes the canary.
        first = cli(url, key_a, "secrets", "rotate")
        assert assert_ok(first).strip() == "re-encrypted 0 secrets under the newest key"
        sealed = asyncio.run(write_sealed_values(url, Keyring([key_a.encode()])))
        expected = len(sealed)
        # The integrations' secrets; per subscription two inputs, a signing secret and its own secret; one previous.
        assert expected == 2 * SECRETS_PER_INTEGRATION + 2 * (2 + 1 + 1) + 1

        # A value that no key opens stops the rotation, names its table, and leaves everything as it was.
        foreign = asyncio.run(insert_foreign_secret(url, Keyring([generate_key().encode()])))
        refused = cli(url, f"{key_b},{key_a}", "secrets", "rotate")
        line = assert_one_line_error(refused, "integration_secrets.token")
        assert "FOREIGN" in line and "nothing was re-encrypted" in line
        assert_never_shown(refused, key_a, key_b, "foreign-value")
        untouched = asyncio.run(read_tokens(url))
        del untouched[("integration_secrets", f"integration-secret:{foreign}:FOREIGN")]
        assert untouched == {k: token for k, (token, _) in sealed.items()}
        asyncio.run(delete_integration_secrets_of(url, foreign))

        rotated = cli(url, f"{key_b},{key_a}", "secrets", "rotate")
        assert assert_ok(rotated).strip() == f"re-encrypted {expected} secrets under the newest key"
        assert_never_shown(rotated, key_a, key_b, *(v for _, v in sealed.values()))

        tokens = asyncio.run(read_tokens(url))
        assert tokens.keys() == sealed.keys()
        only_b = Keyring([key_b.encode()])
        for (table, context), token in tokens.items():
            assert token != sealed[(table, context)][0], (table, context)
            assert only_b.open(token, context) == sealed[(table, context)][1], (table, context)
        [(context, answer)] = asyncio.run(read_answers(url)).items()
        assert only_b.open(answer, context).startswith("answer-")

        # B alone now opens everything, the canary included; A alone opens nothing.
        assert assert_ok(cli(url, key_b, "secrets", "rotate")).strip() == f"re-encrypted {expected} secrets under the newest key"
        with served(env_for(url, key_b), tmp_path / "serve-b.log") as origin:
            assert httpx.get(f"{origin}/openapi.json", timeout=5).status_code == 200
        assert key_b not in (tmp_path / "serve-b.log").read_text()
        for args in (["secrets", "rotate"], serve_args()):
            old = cli(url, key_a, *args)
            assert_one_line_error(old, CANARY_REFUSAL)
            assert_never_shown(old, key_a, key_b)


def test_postgres_without_keys_refuses_to_serve_or_rotate_but_migrates(database_url, is_postgres):
    if not is_postgres:
        pytest.skip("SQLite falls back to a key file")
    with fresh_postgres_database(database_url, prefix="odeus_keys") as url:
        assert "database upgraded" in assert_ok(cli(url, None, "migrate"))
        for args in (serve_args(), ["secrets", "rotate"]):
            assert_one_line_error(cli(url, None, *args), "ODEUS_ENCRYPTION_KEYS is not set")


@pytest.mark.parametrize("command", [["secrets", "rotate"], ["serve"], ["migrate"]], ids=" ".join)
def test_a_malformed_key_is_named_but_never_echoed(database_url, command):
    good = generate_key()
    malformed = "not-a-fernet-key-" + uuid.uuid4().hex
    result = cli(database_url, f"{good},{malformed}", *command)
    line = assert_one_line_error(result, "ODEUS_ENCRYPTION_KEYS")
    assert "key 2 is not a Fernet key" in line
    assert_never_shown(result, good, malformed)


def test_sqlite_without_keys_makes_a_private_key_file_once(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'own.db'}"
    key_file = tmp_path / "own.db.key"
    assert_ok(cli(url, None, "migrate"))
    assert not key_file.exists()  # migrate needs no key

    # `served` adds the test key to an environment without one; an empty value counts as unset.
    with served({**env_for(url, None), "ODEUS_ENCRYPTION_KEYS": ""}, tmp_path / "serve.log"):
        pass
    log = (tmp_path / "serve.log").read_text()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    Fernet(key)
    assert "generated an encryption key into" in log and str(key_file) in log
    assert key not in log

    again = cli(url, None, "secrets", "rotate")
    assert assert_ok(again).strip() == "re-encrypted 0 secrets under the newest key"
    assert "generated an encryption key" not in again.stderr
    assert_never_shown(again, key)
    assert key_file.read_text().strip() == key


def test_generate_key_prints_one_fernet_key_without_a_database(tmp_path):
    env = env_for("postgresql+asyncpg://nobody@127.0.0.1:1/none", "not a key")
    result = subprocess.run(cli_command("secrets", "generate-key"), env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    Fernet(lines[0])
    again = subprocess.run(cli_command("secrets", "generate-key"), env=env, capture_output=True, text=True, timeout=60)
    assert again.stdout != result.stdout
