"""The operator's CLI, run as a user runs it: in a subprocess."""

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from support.helpers import TEST_ENCRYPTION_KEY, admin_execute, create_path, fresh_postgres_database

CLI = str(Path(sys.executable).parent / "odeus-triggers")


def run(database_url: str, *args: str, cwd: str | None = None, check: bool = True,
        env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["DATABASE_URL"] = database_url
    env.setdefault("ODEUS_ENCRYPTION_KEYS", TEST_ENCRYPTION_KEY)
    env.update(env_extra or {})
    result = subprocess.run([CLI, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=60)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("odeus-triggers: error:") and fragment in lines[0], lines[0]


async def test_bootstrap_json_prints_one_object_whose_key_works(database_url, client):
    result = run(database_url, "bootstrap", "--workspace", f"cli-{uuid.uuid4().hex[:8]}", "--json")
    created = json.loads(result.stdout)
    assert set(created) == {"workspaceId", "apiKey", "integrationId"}
    response = await client.post(
        create_path("/api/public", created["integrationId"]), json={"name": "From the CLI"},
        headers={"Authorization": f"Bearer {created['apiKey']}"},
    )
    assert response.status_code == 201


def test_bootstrap_reuses_the_workspace_and_makes_a_new_key_and_integration(database_url):
    name = f"cli-{uuid.uuid4().hex[:8]}"
    first = json.loads(run(database_url, "bootstrap", "--workspace", name, "--json").stdout)
    second = json.loads(run(database_url, "bootstrap", "--workspace", name, "--json").stdout)
    assert first["workspaceId"] == second["workspaceId"]
    assert first["apiKey"] != second["apiKey"] and first["integrationId"] != second["integrationId"]


def test_bootstrap_without_json_prints_a_curl_command(database_url):
    out = run(database_url, "bootstrap", "--workspace", f"cli-{uuid.uuid4().hex[:8]}").stdout
    assert "curl -sS -X POST http://127.0.0.1:8000/integrations/v1/" in out
    assert "Authorization: Bearer odk_" in out


async def test_keys_create_list_revoke(database_url, settings):
    workspace = f"cli-{uuid.uuid4().hex[:8]}"
    boot = json.loads(run(database_url, "bootstrap", "--workspace", workspace, "--json").stdout)
    created = json.loads(run(database_url, "keys", "create", "--workspace", workspace, "--scope", "INTEGRATION_API",
                             "--scope", "ASSISTANT_API", "--expires-in-days", "30", "--json").stdout)
    assert created["apiKey"].startswith("odk_") and created["scopes"] == ["ASSISTANT_API", "INTEGRATION_API"]
    assert created["expiresAt"] is not None

    listing = run(database_url, "keys", "list", "--workspace", boot["workspaceId"]).stdout
    assert created["apiKey"] not in listing and boot["apiKey"] not in listing
    assert created["apiKey"][:12] in listing and created["id"] in listing

    revoked = run(database_url, "keys", "revoke", created["apiKey"][:12])
    assert created["id"] in revoked.stdout
    keys = json.loads(run(database_url, "keys", "list", "--workspace", workspace, "--json").stdout)
    state = {k["id"]: k["revokedAt"] for k in keys}
    assert state[created["id"]] is not None

    from odeus_triggers.app import create_app

    uncached = create_app(settings.model_copy(update={"auth_cache_seconds": 0}))
    async with uncached.router.lifespan_context(uncached):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=uncached), base_url="http://t") as c:
            path = create_path("", boot["integrationId"])
            gone = await c.post(path, json={"name": "x"}, headers={"Authorization": f"Bearer {created['apiKey']}"})
            kept = await c.post(path, json={"name": "x"}, headers={"Authorization": f"Bearer {boot['apiKey']}"})
    assert (gone.status_code, kept.status_code) == (401, 201)


def test_integrations_create(database_url):
    workspace = f"cli-{uuid.uuid4().hex[:8]}"
    run(database_url, "bootstrap", "--workspace", workspace, "--json")
    out = json.loads(run(database_url, "integrations", "create", "--workspace", workspace, "--name", "GitHub",
                         "--description", "Issues and PRs", "--json").stdout)
    assert out["name"] == "GitHub" and out["description"] == "Issues and PRs"
    uuid.UUID(out["id"])
    assert_one_line_error(
        run(database_url, "integrations", "create", "--workspace", workspace, "--name", "x" * 41, check=False), "1 to 40"
    )


def test_errors_are_one_line_without_traceback(database_url):
    assert_one_line_error(
        run(database_url, "keys", "create", "--workspace", "no-such-workspace", "--scope", "INTEGRATION_API", check=False),
        "no workspace named",
    )
    assert_one_line_error(run(database_url, "keys", "revoke", "odk_nothing_like_it", check=False), "no API key matches")
    unreachable = "postgresql+asyncpg://nobody:s3cret-password@127.0.0.1:1/none"
    result = run(unreachable, "migrate", check=False)
    assert_one_line_error(result, "cannot reach the database")
    assert "s3cret-password" not in result.stderr
    assert_one_line_error(run("not a url", "migrate", check=False), "DATABASE_URL")


def test_a_database_that_is_not_migrated_says_so(database_url, is_postgres, tmp_path):
    with contextlib.ExitStack() as stack:
        empty = (stack.enter_context(fresh_postgres_database(database_url)) if is_postgres
                 else f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
        result = run(empty, "keys", "list", "--workspace", "default", check=False)
    assert_one_line_error(result, "run `odeus-triggers migrate` first")


def test_a_missing_database_says_so(database_url, is_postgres, tmp_path):
    if is_postgres:
        missing = make_url(database_url).set(database="odeus_no_such_db").render_as_string(hide_password=False)
        assert_one_line_error(run(missing, "migrate", check=False), "does not exist")
    else:
        missing = f"sqlite+aiosqlite:///{tmp_path / 'no-such-dir' / 'x.db'}"
        assert_one_line_error(run(missing, "migrate", check=False), "cannot open the SQLite file")


def test_a_wrong_role_says_so_without_the_password(database_url, is_postgres):
    if not is_postgres:
        pytest.skip("SQLite has no roles")
    url = make_url(database_url).set(username="odeus_no_such_role", password="s3cret-password")
    result = run(url.render_as_string(hide_password=False), "migrate", check=False)
    assert_one_line_error(result, "refused the role")
    assert "s3cret-password" not in result.stderr


def test_a_lock_timeout_says_so(database_url, is_postgres):
    if not is_postgres:
        pytest.skip("the advisory lock is a Postgres feature")
    import asyncpg

    from odeus_triggers.db.migrate import MIGRATION_LOCK_ID

    async def held_while_migrating(url: str) -> subprocess.CompletedProcess:
        u = make_url(url)
        holder = await asyncpg.connect(host=u.host, port=u.port or 5432, user=u.username, database=u.database)
        try:
            await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
            return await asyncio.to_thread(run, url, "migrate", check=False,
                                           env_extra={"ODEUS_MIGRATE_LOCK_TIMEOUT_SECONDS": "1"})
        finally:
            await holder.close()

    with fresh_postgres_database(database_url) as url:
        result = asyncio.run(held_while_migrating(url))
    assert_one_line_error(result, "gave up waiting for a database lock")
    assert "ODEUS_MIGRATE_LOCK_TIMEOUT_SECONDS" in result.stderr


def test_settings_errors_name_the_environment_variable(database_url):
    result = run(database_url, "migrate", check=False, env_extra={"ODEUS_POLLING_WORKERS": "many-workers"})
    assert_one_line_error(result, "ODEUS_POLLING_WORKERS")
    assert "many-workers" not in result.stderr
    result = run(database_url, "serve", check=False, env_extra={"REDIS_URL": "s3cret-password@localhost:6379"})
    assert_one_line_error(result, "REDIS_URL")
    assert "s3cret-password" not in result.stderr


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_the_url_forms_platforms_inject_are_accepted(database_url, is_postgres, scheme):
    if not is_postgres:
        pytest.skip("a Postgres URL form")
    plain = f"{scheme}://" + database_url.split("://", 1)[1]
    assert "already at the latest revision" in run(plain, "migrate").stdout
    assert json.loads(run(plain, "bootstrap", "--workspace", f"cli-{uuid.uuid4().hex[:8]}", "--json").stdout)


def test_migrate_is_idempotent(database_url):
    assert "already at the latest revision" in run(database_url, "migrate").stdout


def test_concurrent_migrations_on_a_fresh_postgres_database(database_url, is_postgres):
    if not is_postgres:
        pytest.skip("the advisory lock is a Postgres feature")
    name = f"odeus_mig_{uuid.uuid4().hex[:10]}"
    asyncio.run(admin_execute(database_url, f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
        env = {**os.environ, "DATABASE_URL": url}
        procs = [subprocess.Popen([CLI, "migrate"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(4)]
        outputs = [p.communicate(timeout=60) for p in procs]
        assert [p.returncode for p in procs] == [0] * 4, outputs
        assert sum("upgraded" in out for out, _ in outputs) == 1
    finally:
        asyncio.run(admin_execute(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_answering(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"nothing answered on port {port} within {timeout:.0f} s")


def test_serve_on_the_embedded_default_bootstraps_once_and_answers(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    proc = subprocess.Popen([CLI, "serve", "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "-d '" in line or not line:
                break
        text = "".join(lines)
        key = next(w for w in text.split() if w.startswith("odk_"))
        integration_id = text.split("Integration id:")[1].split()[0]
        assert f"http://127.0.0.1:{port}/integrations/v1/{integration_id}/triggers/create" in text
        wait_until_answering(port)
        response = httpx.post(
            f"http://127.0.0.1:{port}{create_path('', integration_id)}", json={"name": "Served"},
            headers={"Authorization": f"Bearer {key}"}, timeout=5,
        )
        assert response.status_code == 201, response.text
        assert (tmp_path / "odeus-triggers.db").is_file()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    # A second start finds the workspace and prints no new key.
    again = subprocess.Popen([CLI, "serve", "--port", str(port)], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until_answering(port)
    finally:
        again.terminate()
        out, _ = again.communicate(timeout=20)
    assert "odk_" not in out
