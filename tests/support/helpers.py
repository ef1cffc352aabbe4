"""Assertions shared by the tests."""

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from odeus_triggers.app import create_app
from odeus_triggers.auth import admin
from odeus_triggers.auth.scopes import Scope
from odeus_triggers.integrations.service import create_integration
from odeus_triggers.secretbox import generate_key

# One keyring for the run's databases: every app, served process and CLI call of the run opens their secrets.
TEST_ENCRYPTION_KEY = generate_key()


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == "about:blank"
    assert body["title"] and body["detail"]
    assert body["requestId"] == response.headers["x-request-id"]
    return body


def error_fields(response: httpx.Response) -> list[str]:
    return [e["field"] for e in response.json()["errors"]]


@dataclass
class Tenant:
    """A workspace with a key and an integration, as a customer would have."""

    workspace_id: uuid.UUID
    key: str
    integration_id: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def make_tenant(app: object, scopes: list[Scope] | None = None) -> Tenant:
    engine = app.state.engine  # type: ignore[attr-defined]
    workspace_id = await admin.ensure_workspace(engine, f"ws-{uuid.uuid4().hex[:10]}")
    key = await admin.create_key(engine, workspace_id, scopes or [Scope.INTEGRATION_API])
    integration = await create_integration(engine, workspace_id, "Tracker", "Issue tracker")
    return Tenant(workspace_id, key.key, integration["id"])



def create_path(base: str, integration_id: str) -> str:
    return f"{base}/integrations/v1/{integration_id}/triggers/create"


def trigger_path(base: str, integration_id: str, trigger_id: str) -> str:
    return f"{base}/integrations/v1/{integration_id}/triggers/{trigger_id}"


def integration_path(base: str, integration_id: str) -> str:
    return f"{base}/integrations/v1/{integration_id}"


async def key_for(app: object, tenant: Tenant, scopes: list[Scope]) -> dict[str, str]:
    """Auth headers for another key of the tenant's workspace, with exactly `scopes` (maybe none)."""
    new = await admin.create_key(app.state.engine, tenant.workspace_id, scopes)  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {new.key}"}


def run_path(base: str, integration_id: str, trigger_id: str) -> str:
    """The test-run route of a trigger (not named test_…, which pytest would collect)."""
    return f"{trigger_path(base, integration_id, trigger_id)}/test"


async def create_and_dry_run(
    client: httpx.AsyncClient, tenant: Tenant, code: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Save `code` as a new trigger of the tenant's integration, test-run it once, return the 200's body."""
    created = await client.post(
        create_path("", tenant.integration_id),
        json={"name": f"Probe {uuid.uuid4().hex[:8]}", "pollingCode": code},
        headers=tenant.auth,
    )
    assert created.status_code == 201, created.text
    response = await client.post(
        run_path("", tenant.integration_id, created.json()["trigger"]["id"]), json=body or {}, headers=tenant.auth
    )
    assert response.status_code == 200, response.text
    return response.json()


@asynccontextmanager
async def started_app(settings: Any, **overrides: object) -> AsyncIterator[Any]:
    """An app of its own, with these settings changed, between its start-up and shut-down."""
    app = create_app(settings.model_copy(update=overrides))
    async with app.router.lifespan_context(app):
        yield app


def client_of(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def admin_execute(url: str, *statements: str) -> None:
    """Run statements (CREATE/DROP DATABASE) on the server that `url` points at."""
    import asyncpg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    conn = await asyncpg.connect(
        host=u.host or "127.0.0.1", port=u.port or 5432, user=u.username, password=u.password,
        database=u.database or "postgres", timeout=5,
    )
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def fresh_postgres_database(server_url: str, prefix: str = "odeus_tmp") -> Iterator[str]:
    """An empty database of its own on the server of `server_url`, dropped afterwards; yields its URL."""
    import asyncio

    from sqlalchemy.engine import make_url

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    asyncio.run(admin_execute(server_url, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(admin_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def cli_command(*args: str) -> list[str]:
    """The argv that runs the service's own CLI (`odeus-triggers …`) from this environment."""
    import sys
    from pathlib import Path

    script = Path(sys.executable).with_name("odeus-triggers")
    head = [str(script)] if script.exists() else [sys.executable, "-c", "from odeus_triggers.cli import main; main()"]
    return [*head, *args]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(
    env: dict[str, str], log_path: Any, timeout: float = 60, workers: int = 1, *extra_args: str,
    embedded_worker: bool | None = False,
) -> Any:
    """`odeus-triggers serve` on a free loopback port, with `env`; yields its origin once it answers.

    No embedded scheduler unless the test asks for one (it would poll other tests' subscriptions);
    `embedded_worker=None` leaves the service's own default (on for SQLite)."""
    import subprocess
    import time

    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    env = {"ODEUS_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY, **env}
    if embedded_worker is not None:
        env.setdefault("ODEUS_EMBEDDED_WORKER", str(embedded_worker).lower())
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            cli_command("serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), *extra_args),
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + timeout
        with httpx.Client(trust_env=False, timeout=2) as client:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"the service exited with {process.returncode}:\n{_tail(log_path)}")
                try:
                    if client.get(f"{origin}/openapi.json").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the service did not answer within {timeout:.0f} s:\n{_tail(log_path)}")
                time.sleep(0.2)
        yield origin
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _tail(path: Any, size: int = 3000) -> str:
    with open(path, "rb") as f:
        return f.read().decode(errors="replace")[-size:]
