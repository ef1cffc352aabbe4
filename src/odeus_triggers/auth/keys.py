"""API key format: `odk_` + 43 base62 characters (256 random bits) + a 6-character CRC32 checksum.

The fixed prefix and the checksum let secret scanners find a leaked key with no false positives,
and let the service reject a mistyped key without touching the database.
"""

import hashlib
import re
import secrets
import zlib

KEY_PREFIX = "odk_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY_LEN = 43
_CHECK_LEN = 6
KEY_PATTERN = re.compile(rf"^{KEY_PREFIX}[0-9A-Za-z]{{{_BODY_LEN + _CHECK_LEN}}}$")
DISPLAY_PREFIX_LEN = 12


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, rem = divmod(number, 62)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECK_LEN)


def generate_key() -> str:
    body = _base62(secrets.randbits(256), _BODY_LEN)
    return KEY_PREFIX + body + _checksum(body)


def is_well_formed(key: str) -> bool:
    if not KEY_PATTERN.match(key):
        return False
    body, check = key[len(KEY_PREFIX) : -_CHECK_LEN], key[-_CHECK_LEN:]
    return secrets.compare_digest(_checksum(body), check)


def digest(key: str) -> str:
    # A plain SHA-256 suffices: the key carries 256 random bits, so there is nothing to brute-force.
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    return key[:DISPLAY_PREFIX_LEN]
