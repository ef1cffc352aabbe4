"""`odeus-triggers secrets …`, and the keyring check that `serve` makes before it starts.

Every refusal here is a KeyringError, which `cli.main` prints as one line: its messages name the
setting, the file or the table at fault, never a key or a stored value."""

import argparse
import asyncio

from .config import Settings
from .db.engine import make_engine
from .db.sealed import rotate_all, verify_canary
from .ops.logs import configure_logging
from .secretbox import Keyring, KeyringError, SealBroken, generate_key, keyring_from_settings


def _keyring(settings: Settings) -> Keyring:
    # Before the keyring: on SQLite it may generate the key file, and the warning that says so
    # goes through the service's log handler, which also masks the configured secrets.
    configure_logging(settings)
    return keyring_from_settings(settings)


async def _verified(settings: Settings, keyring: Keyring) -> None:
    engine = make_engine(settings, kind="cli")
    try:
        await verify_canary(engine, keyring)
    finally:
        await engine.dispose()


def check_keyring(settings: Settings) -> None:
    """Strictly, unlike the app's start-up: an unreachable database fails here too, so that `serve`
    never starts with keys it has not checked."""
    asyncio.run(_verified(settings, _keyring(settings)))


async def _rotate(settings: Settings, keyring: Keyring) -> int:
    engine = make_engine(settings, kind="cli")
    try:
        await verify_canary(engine, keyring)
        return await rotate_all(engine, keyring)
    finally:
        await engine.dispose()


def cmd_generate_key(args: argparse.Namespace, settings: Settings | None) -> None:
    print(generate_key())


def cmd_rotate(args: argparse.Namespace, settings: Settings) -> None:
    keyring = _keyring(settings)
    try:
        count = asyncio.run(_rotate(settings, keyring))
    except SealBroken as exc:
        raise KeyringError(f"{exc}; nothing was re-encrypted (restore that value or delete it, then rotate again)") from None
    print(f"re-encrypted {count} secret{'' if count == 1 else 's'} under the newest key")


def add_secrets_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    secrets = sub.add_parser("secrets", help="the encryption keys of the secrets at rest").add_subparsers(
        dest="secrets_command", required=True
    )
    # No settings: it is what an operator runs to repair a malformed ODEUS_ENCRYPTION_KEYS.
    secrets.add_parser("generate-key", help="print a new key for ODEUS_ENCRYPTION_KEYS").set_defaults(
        func=cmd_generate_key, needs_settings=False
    )
    secrets.add_parser(
        "rotate", help="re-encrypt every stored secret under the newest key of ODEUS_ENCRYPTION_KEYS"
    ).set_defaults(func=cmd_rotate)
