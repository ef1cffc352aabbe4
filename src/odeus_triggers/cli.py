"""The operator's command line: `odeus-triggers migrate | bootstrap | keys | integrations | secrets | serve | worker | listen`."""

import argparse
import asyncio
import json
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import AliasChoices
from sqlalchemy import func, select

from .auth import admin
from .auth.scopes import Scope
from .cli_listen import add_listen_command
from .cli_secrets import add_secrets_commands, check_keyring
from .cli_worker import add_with_worker_flag, add_worker_command, apply_with_worker
from .config import DEFAULT_DATABASE_URL, Settings, get_settings
from .db.engine import make_engine
from .db.migrate import upgrade_to_head
from .db.tables import Workspace
from .integrations.service import create_integration
from .secretbox import KeyringError, SealBroken
from .timestamps import iso_z

T = TypeVar("T")


def _engine_call(settings: Settings, action: Callable[[Any], Awaitable[T]]) -> T:
    async def run() -> T:
        engine = make_engine(settings, kind="cli")
        try:
            return await action(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _curl_example(key: str, integration_id: str, base: str) -> str:
    return (
        f"curl -sS -X POST {base}/integrations/v1/{integration_id}/triggers/create \\\n"
        f"  -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\\n"
        """  -d '{"name": "New Issue Created", "inputFields": [{"label": "Project ID", "required": true}]}'"""
    )


async def _bootstrap(engine: Any, workspace: str) -> dict[str, str]:
    workspace_id = await admin.ensure_workspace(engine, workspace)
    new_key = await admin.create_key(engine, workspace_id, [Scope.INTEGRATION_API])
    integration = await create_integration(engine, workspace_id, "My integration", "Created by bootstrap")
    return {"workspaceId": str(workspace_id), "apiKey": new_key.key, "integrationId": integration["id"]}


def _print_bootstrap(result: dict[str, str], base: str) -> None:
    print(f"Workspace:      {result['workspaceId']}")
    print(f"API key:        {result['apiKey']}   (shown once; store it now)")
    print(f"Integration id: {result['integrationId']}")
    print("\nTry it:\n" + _curl_example(result["apiKey"], result["integrationId"], base))


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> None:
    applied = asyncio.run(upgrade_to_head(settings))
    print("database upgraded to the latest revision" if applied else "database already at the latest revision")


def cmd_bootstrap(args: argparse.Namespace, settings: Settings) -> None:
    result = _engine_call(settings, lambda e: _bootstrap(e, args.workspace))
    if args.json:
        print(json.dumps(result))
    else:
        _print_bootstrap(result, "http://127.0.0.1:8000")


def cmd_keys_create(args: argparse.Namespace, settings: Settings) -> None:
    scopes = [Scope(s) for s in args.scope]
    new = _engine_call(settings, lambda e: admin.create_key(e, args.workspace, scopes, args.expires_in_days))
    out = {
        "apiKey": new.key,
        "id": str(new.id),
        "prefix": new.prefix,
        "workspaceId": str(new.workspace_id),
        "scopes": new.scopes,
        "expiresAt": iso_z(new.expires_at) if new.expires_at else None,
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"API key: {new.key}   (shown once; store it now)\nid: {new.id}\nscopes: {', '.join(new.scopes)}")


def cmd_keys_list(args: argparse.Namespace, settings: Settings) -> None:
    rows = _engine_call(settings, lambda e: admin.list_keys(e, args.workspace))
    if args.json:
        print(json.dumps(rows))
        return
    for r in rows:
        state = "revoked" if r["revokedAt"] else ("expires " + r["expiresAt"] if r["expiresAt"] else "active")
        print(f"{r['id']}  {r['prefix']}…  {','.join(r['scopes'])}  {state}")


def cmd_keys_revoke(args: argparse.Namespace, settings: Settings) -> None:
    key_id = _engine_call(settings, lambda e: admin.revoke_key(e, args.key))
    print(f"revoked {key_id} (cached verifications expire within {settings.auth_cache_seconds:g} s)")


def cmd_integrations_create(args: argparse.Namespace, settings: Settings) -> None:
    async def action(engine: Any) -> dict[str, Any]:
        async with engine.connect() as conn:
            workspace_id = await admin.find_workspace(conn, args.workspace)
        return await create_integration(engine, workspace_id, args.name, args.description)

    if len(args.name.strip()) == 0 or len(args.name) > 40:
        raise admin.AdminError("--name must be 1 to 40 characters")
    if args.description and len(args.description) > 90:
        raise admin.AdminError("--description must be at most 90 characters")
    integration = _engine_call(settings, action)
    print(json.dumps(integration) if args.json else f"integration {integration['id']} ({integration['name']})")


async def _first_run_bootstrap(engine: Any) -> dict[str, str] | None:
    async with engine.connect() as conn:
        if await conn.scalar(select(func.count()).select_from(Workspace)):
            return None
    return await _bootstrap(engine, "default")


def cmd_serve(args: argparse.Namespace, settings: Settings) -> None:
    import uvicorn

    from .edge.http_protocol import HttpProtocol
    from .ops.logs import uvicorn_log_config
    from .ops.metrics import share_between_workers

    settings = apply_with_worker(args)
    asyncio.run(upgrade_to_head(settings))
    check_keyring(settings)
    if settings.database_url.get_secret_value() == DEFAULT_DATABASE_URL:
        result = _engine_call(settings, _first_run_bootstrap)
        if result is not None:
            print("First run on the embedded database: created a workspace, an API key and an integration.\n")
            host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
            _print_bootstrap(result, f"http://{host}:{args.port}")
            print(flush=True)
    if args.workers > 1:
        share_between_workers()
    uvicorn.run(
        "odeus_triggers.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        http=HttpProtocol,
        log_level=settings.log_level.lower(),
        log_config=uvicorn_log_config(settings.log_level),
        access_log=False,
        proxy_headers=True,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=20,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="odeus-triggers", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("migrate", help="bring the database to the latest revision").set_defaults(func=cmd_migrate)

    p = sub.add_parser("bootstrap", help="create a workspace (if missing), an API key and an integration")
    p.add_argument("--workspace", default="default")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bootstrap)

    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_command", required=True)
    p = keys.add_parser("create", help="create an API key (printed once)")
    p.add_argument("--workspace", required=True, help="workspace name or id")
    p.add_argument("--scope", action="append", required=True, choices=[s.value for s in Scope])
    p.add_argument("--expires-in-days", type=int, default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_keys_create)
    p = keys.add_parser("list", help="list a workspace's keys (never the keys themselves)")
    p.add_argument("--workspace", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_keys_list)
    p = keys.add_parser("revoke", help="revoke a key by id or display prefix")
    p.add_argument("key", metavar="ID_OR_PREFIX")
    p.set_defaults(func=cmd_keys_revoke)

    integrations = sub.add_parser("integrations", help="manage integrations").add_subparsers(
        dest="integrations_command", required=True
    )
    p = integrations.add_parser("create", help="create an integration")
    p.add_argument("--workspace", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--description", default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_integrations_create)

    add_secrets_commands(sub)

    p = sub.add_parser("serve", help="apply migrations, then serve the API")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    add_with_worker_flag(p)
    p.set_defaults(func=cmd_serve)

    add_worker_command(sub)
    add_listen_command(sub)
    return parser


def _quiet_closed_loop(hook_args: threading.ExceptHookArgs) -> None:
    # aiosqlite's thread may finish a failed connect after asyncio.run has closed the loop; the
    # command has already said what went wrong in one line, so this traceback says nothing more.
    if isinstance(hook_args.exc_value, RuntimeError) and "Event loop is closed" in str(hook_args.exc_value):
        return
    threading.__excepthook__(hook_args)


def main(argv: list[str] | None = None) -> None:
    threading.excepthook = _quiet_closed_loop
    args = build_parser().parse_args(argv)
    if getattr(args, "expires_in_days", None) is not None and args.expires_in_days <= 0:
        sys.exit("odeus-triggers: error: --expires-in-days must be a positive number of days")
    settings = None
    if getattr(args, "needs_settings", True):
        try:
            settings = get_settings()
        except Exception as exc:  # a bad environment variable: name it, without echoing values
            sys.exit(f"odeus-triggers: error: invalid configuration: {_config_problem(exc)}")
    try:
        args.func(args, settings)
    except (admin.AdminError, KeyringError, SealBroken) as exc:
        sys.exit(f"odeus-triggers: error: {exc}")
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # one clear line, never a traceback
        sys.exit(f"odeus-triggers: error: {_describe(exc)}")


def _env_name(field: object) -> str:
    # Operators set environment variables, not fields: name what they would type.
    info = Settings.model_fields.get(str(field))
    if info is None:
        return str(field)  # already an alias such as DATABASE_URL
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"ODEUS_{str(field).upper()}"


def _config_problem(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        return "; ".join(
            f"{_env_name(e['loc'][0]) if e['loc'] else '?'}: {e['msg']}" for e in errors(include_input=False)
        )
    return type(exc).__name__


# Postgres SQLSTATEs: https://www.postgresql.org/docs/current/errcodes-appendix.html
_SQLSTATE_MESSAGES = {
    "3D000": "the database named in DATABASE_URL does not exist; create it (CREATE DATABASE) or fix DATABASE_URL",
    "28000": "the database refused the role in DATABASE_URL (no such role, or pg_hba.conf rejects it)",
    "28P01": "the database refused the password for the role in DATABASE_URL",
    "42501": "the role in DATABASE_URL lacks a privilege this command needs",
    "42P01": "the database has no odeus-triggers tables yet; run `odeus-triggers migrate` first",
    "55P03": "gave up waiting for a database lock (another migration still running?); "
             "see ODEUS_MIGRATE_LOCK_TIMEOUT_SECONDS",
    "57014": "a database statement took longer than ODEUS_DB_STATEMENT_TIMEOUT_SECONDS and was cancelled",
}


def _describe(exc: Exception) -> str:
    from sqlalchemy.exc import ArgumentError, DBAPIError

    if isinstance(exc, ArgumentError):
        return "DATABASE_URL is not a valid database URL (expected sqlite+aiosqlite:///… or postgresql+asyncpg://…)"
    orig = getattr(exc, "orig", None)
    message = _SQLSTATE_MESSAGES.get(getattr(orig, "sqlstate", None) or "")
    if message:
        return message
    if isinstance(exc, DBAPIError) and type(orig).__module__ == "sqlite3":
        if "no such table" in str(orig):
            return _SQLSTATE_MESSAGES["42P01"]
        if "unable to open database file" in str(orig):
            return "cannot open the SQLite file named in DATABASE_URL (does its directory exist and is it writable?)"
        if "locked" in str(orig):
            return "the SQLite database stayed locked by another process; try again"
    if isinstance(exc, (DBAPIError, OSError, ConnectionError, TimeoutError)):
        return f"cannot reach the database ({type(orig or exc).__name__}); check DATABASE_URL"
    return f"{type(exc).__name__}: {exc}"
