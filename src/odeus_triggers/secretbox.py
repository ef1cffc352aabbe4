"""Secrets at rest: a MultiFernet keyring, and values sealed to the row they belong to.

Fernet has no associated data, so the binding travels inside the token: the plaintext is
`<context>\\0<value>`, where the context names the row (`integration-secret:<id>:<name>`). Fernet
authenticates it with the value, so a token copied into another row no longer opens there.
`MultiFernet.rotate` re-encrypts a token under the newest key and keeps its binding.
"""

import logging
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy.engine import make_url

from .config import Settings

log = logging.getLogger("odeus_triggers.secretbox")

_SEPARATOR = b"\x00"


class KeyringError(Exception):
    """The keyring cannot be used: the message is one line for an operator, and holds no key."""


class SealBroken(Exception):
    """A token that no configured key opens, or that was sealed for another row."""


class Keyring:
    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise KeyringError("no encryption key is configured")
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    def seal(self, value: str, context: str) -> str:
        """A token of `value` that opens only for `context`, under the newest key."""
        return self._fernet.encrypt(context.encode() + _SEPARATOR + value.encode()).decode("ascii")

    def open(self, token: str, context: str) -> str:
        try:
            plain = self._fernet.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            raise SealBroken("no configured key opens this value") from None
        bound, _, value = plain.partition(_SEPARATOR)
        if bound != context.encode():
            raise SealBroken("this value was sealed for another row")
        return value.decode()

    def rotate(self, token: str) -> str:
        """The same sealed value under the newest key (raises SealBroken if no key opens it)."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeEncodeError):
            raise SealBroken("no configured key opens this value") from None


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


def key_file_of(settings: Settings) -> Path | None:
    """`<database file>.key` for a SQLite file; None for Postgres and for an in-memory SQLite."""
    if not settings.is_sqlite:
        return None
    database = make_url(settings.database_url.get_secret_value()).database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return Path(database).with_name(Path(database).name + ".key")


def _read_or_create_key_file(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # an earlier start, or another process that won the race
        key = path.read_bytes().strip()
        if not key:
            raise KeyringError(f"the key file {path} is empty; restore it, or set ODEUS_ENCRYPTION_KEYS") from None
        return key
    key = Fernet.generate_key()
    with os.fdopen(fd, "wb") as f:
        f.write(key + b"\n")
    log.warning(
        "ODEUS_ENCRYPTION_KEYS is not set: generated an encryption key into %s (mode 0600). "
        "Back it up with the database; without it the stored secrets cannot be read.",
        path,
    )
    return key


def keyring_from_settings(settings: Settings) -> Keyring:
    """The configured keyring; on SQLite without one, the key file beside the database."""
    if settings.encryption_keys is not None:
        keys = [k.strip().encode() for k in settings.encryption_keys.get_secret_value().split(",") if k.strip()]
        return Keyring(keys)
    if not settings.is_sqlite:
        raise KeyringError(
            "ODEUS_ENCRYPTION_KEYS is not set; it is required on Postgres "
            "(make a key with `odeus-triggers secrets generate-key`)"
        )
    path = key_file_of(settings)
    if path is None:
        log.warning("ODEUS_ENCRYPTION_KEYS is not set: secrets of this in-memory database use a throwaway key.")
        return Keyring([Fernet.generate_key()])
    try:
        return Keyring([_read_or_create_key_file(path)])
    except ValueError:
        raise KeyringError(f"the key file {path} does not hold a Fernet key; restore it, or set ODEUS_ENCRYPTION_KEYS") from None
    except OSError as exc:
        raise KeyringError(f"cannot read or create the key file {path} ({exc.strerror})") from None
