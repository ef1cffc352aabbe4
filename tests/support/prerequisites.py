"""What the suite needs besides Python packages, checked once before any test runs.

Each missing prerequisite is one line on the terminal. Under CI=true the run stops there (exit code
4, before any test); elsewhere only the tests that need it are skipped, with that line as the reason.
"""

import asyncio
import os
import pwd
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from support import throwaway_postgres

CHROMIUM = Path("/usr/bin/chromium")
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
CI_EXIT_CODE = 4  # pytest's "usage error": the environment, not a test, is wrong


@dataclass(frozen=True)
class Missing:
    name: str
    line: str  # what is missing and the command that installs or starts it


def redis_url() -> str:
    return os.environ.get("TEST_REDIS_URL", DEFAULT_REDIS_URL)


def _shown(url: str) -> str:
    """The URL without its password."""
    return re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", url)


def check_redis() -> Missing | None:
    import redis

    url = redis_url()
    try:
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, ValueError, OSError) as exc:
        return Missing("redis", f"Redis at TEST_REDIS_URL={_shown(url)} is unreachable ({type(exc).__name__}): "
                                "apt-get install -y redis-server, or point TEST_REDIS_URL at one")
    return None


def check_redis_server() -> Missing | None:
    if shutil.which("redis-server") is None:
        return Missing("redis-server", "redis-server is not on PATH (a test starts and stops its own): "
                                       "apt-get install -y redis-server")
    return None


def check_chromium() -> Missing | None:
    if not CHROMIUM.exists():
        return Missing("chromium", f"{CHROMIUM} is absent (the /docs browser test): apt-get install -y chromium")
    return None


def check_initdb() -> Missing | None:
    if throwaway_postgres.find_binary("initdb") is None or throwaway_postgres.find_binary("pg_ctl") is None:
        return Missing("initdb", "initdb/pg_ctl are not found on PATH or in /usr/lib/postgresql/*/bin "
                                 "(the database outage test's own cluster): apt-get install -y postgresql")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return Missing("initdb", "running as root without a `postgres` user to run the throwaway "
                                     "cluster as: apt-get install -y postgresql (creates it)")
    return None


def check_postgres(url: str) -> Missing | None:
    from support.helpers import admin_execute

    try:
        asyncio.run(asyncio.wait_for(admin_execute(url, "SELECT 1"), 10))
    except Exception as exc:
        shown = make_url(url).render_as_string(hide_password=True)
        return Missing("postgres", f"Postgres at TEST_DATABASE_URL={shown} is unreachable ({type(exc).__name__}): "
                                   "apt-get install -y postgresql, or unset TEST_DATABASE_URL to use SQLite")
    return None


# Which tests need what: a fixture they use, or the module they live in.
NEEDS_BY_FIXTURE = {"redis_url": "redis", "redis_prefix": "redis", "own_redis": "redis-server",
                    "postgres": "initdb"}
NEEDS_BY_MODULE = {"test_docs_browser.py": "chromium"}
CHECKS = {"redis": check_redis, "redis-server": check_redis_server, "chromium": check_chromium,
          "initdb": check_initdb}
