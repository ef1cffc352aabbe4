"""Fixtures: a real database (Postgres when TEST_DATABASE_URL is set, else SQLite), the app, and
callers with real hashed keys. Each test makes its own workspace, so tests never share rows."""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from odeus_triggers.app import create_app
from odeus_triggers.config import Settings
from odeus_triggers.db.migrate import upgrade_to_head

from support import prerequisites
from support.fake_http import FakeApi, start_fake_api
from support.helpers import TEST_ENCRYPTION_KEY, Tenant, admin_execute, make_tenant

BASES = ["", "/api/public"]

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
UNDER_CI = os.environ.get("CI") == "true"
_MISSING = pytest.StashKey[list["prerequisites.Missing"]]()


# Prerequisites (support/prerequisites.py): one line per missing one, before any test runs. Under
# CI=true that stops the run with exit code 4; elsewhere the tests that need it are skipped with
# that line as the reason, and the lines are repeated in the summary.
def pytest_configure(config: pytest.Config) -> None:
    config.stash[_MISSING] = []


def _report(config: pytest.Config, missing: list["prerequisites.Missing"]) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    for m in missing:
        if reporter is not None:
            reporter.write_line(f"missing test prerequisite: {m.line}", yellow=True, bold=True)


def pytest_sessionstart(session: pytest.Session) -> None:
    if TEST_DATABASE_URL:  # asked for explicitly: unreachable stops the run, under CI or not
        missing = prerequisites.check_postgres(TEST_DATABASE_URL)
        if missing is not None:
            _report(session.config, [missing])
            pytest.exit("TEST_DATABASE_URL is set but Postgres is unreachable", returncode=prerequisites.CI_EXIT_CODE)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.skipped:  # a module that skipped itself at import (test_docs_browser.py without chromium)
        name = report.nodeid.rsplit("/", 1)[-1]
        if name in prerequisites.NEEDS_BY_MODULE:
            _skipped_modules_seen.add(name)  # no session here: pytest_collection_finish reads it


_skipped_modules_seen: set[str] = set()


def pytest_collection_finish(session: pytest.Session) -> None:
    needs_of: dict[str, set[str]] = {}
    for item in session.items:
        needs = {prerequisites.NEEDS_BY_FIXTURE[f] for f in getattr(item, "fixturenames", ())
                 if f in prerequisites.NEEDS_BY_FIXTURE}
        module_need = prerequisites.NEEDS_BY_MODULE.get(item.path.name)
        if module_need:
            needs.add(module_need)
        needs_of[item.nodeid] = needs
    needed = set().union(*needs_of.values()) | {prerequisites.NEEDS_BY_MODULE[m] for m in _skipped_modules_seen}
    missing = [m for name in sorted(needed) if (m := prerequisites.CHECKS[name]()) is not None]
    if not missing:
        return
    session.config.stash[_MISSING] = missing
    _report(session.config, missing)
    if UNDER_CI:
        pytest.exit(f"{len(missing)} test prerequisite(s) missing under CI=true", returncode=prerequisites.CI_EXIT_CODE)
    by_name = {m.name: m for m in missing}
    for item in session.items:
        absent = [by_name[n] for n in sorted(needs_of[item.nodeid]) if n in by_name]
        if absent:
            item.add_marker(pytest.mark.skip(reason="missing prerequisite: " + absent[0].line))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    missing = config.stash.get(_MISSING, [])
    if missing:
        terminalreporter.section("missing test prerequisites" + (" (CI=true: nothing ran)" if UNDER_CI
                                  else " (their tests were skipped)"), yellow=True)
        for m in missing:
            terminalreporter.write_line(m.line)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh database for this test run, migrated to head."""
    if not TEST_DATABASE_URL:
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        asyncio.run(upgrade_to_head(Settings(database_url=url)))
        yield url
        return
    name = f"odeus_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(admin_execute(TEST_DATABASE_URL, f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # under CI an unreachable Postgres must fail the run, never skip it
        pytest.fail(f"TEST_DATABASE_URL is set but Postgres is unreachable: {type(exc).__name__}: {exc}", pytrace=False)
    url = make_url(TEST_DATABASE_URL).set(database=name).render_as_string(hide_password=False)
    asyncio.run(upgrade_to_head(Settings(database_url=url)))
    yield url
    asyncio.run(admin_execute(TEST_DATABASE_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def is_postgres(database_url: str) -> bool:
    return database_url.startswith("postgresql")


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {"database_url": database_url, "rate_limit": "100000/minute",
                                 "rate_limit_unauthenticated": "100000/minute", "encryption_keys": TEST_ENCRYPTION_KEY,
                                 "min_interval_seconds": 1,
                                 # Apps on SQLite would otherwise poll every subscription the tests create.
                                 "embedded_worker": False}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[object]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: object) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def tenant(app: object) -> Tenant:
    return await make_tenant(app)


@pytest.fixture(params=BASES, ids=["root", "api-public"])
def base(request: pytest.FixtureRequest) -> str:
    return request.param


ROOT = Path(__file__).resolve().parents[1]



@pytest.fixture(scope="session")
def redis_url() -> str:
    """The real Redis the tests share (TEST_REDIS_URL); it must be up."""
    import redis

    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at TEST_REDIS_URL is unreachable: {type(exc).__name__}", pytrace=False)
    finally:
        client.close()
    return url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A Redis key prefix for this test alone; its keys are deleted afterwards."""
    import redis

    prefix = f"odeus-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        stale = list(client.scan_iter(f"{prefix}*"))
        if stale:
            client.delete(*stale)
    finally:
        client.close()


@pytest.fixture(scope="session")
def fake_api() -> Iterator[FakeApi]:
    """A fake issues API on loopback, shared by the sandbox and dry-run tests."""
    api = start_fake_api()
    try:
        yield api
    finally:
        api.stop()
