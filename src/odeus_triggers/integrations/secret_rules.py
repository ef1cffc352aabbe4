"""The rules of a secrets map, shared by integration and subscription secrets (RUNTIME.md,
"Secrets"): a name usable as `secrets.NAME` in the code, a value of at most 8 KiB of UTF-8, and at
most 50 names once merged. Messages name the secret, never its value."""

import json
import re
from collections.abc import Mapping

from ..errors import FieldError

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
MAX_VALUE_BYTES = 8 * 1024
MAX_SECRETS = 50
_NAME = re.compile(NAME_PATTERN)


def secret_path(field: str, name: str) -> str:
    return f"{field}.{name}" if name.isidentifier() else f"{field}[{json.dumps(name[:100])}]"


def secret_map_errors(secrets: Mapping[str, object], field: str = "secrets") -> list[FieldError]:
    """Every problem of a merge body: bad names, values that are neither a string nor null, values too large."""
    errors: list[FieldError] = []
    for name, value in secrets.items():
        path = secret_path(field, name)
        if not _NAME.match(name):
            errors.append(FieldError(field=path, message="is not a valid secret name: a letter or _, then up to 63 "
                                     "letters, digits or _ (so that `secrets.NAME` works in the code)"))
        if value is None:
            continue
        if not isinstance(value, str):
            errors.append(FieldError(field=path, message="must be a string (to set it) or null (to delete it)"))
        elif len(value.encode("utf-8", "surrogatepass")) > MAX_VALUE_BYTES:
            errors.append(FieldError(field=path, message=f"is longer than {MAX_VALUE_BYTES:,} bytes of UTF-8"))
        elif value == "":
            errors.append(FieldError(field=path, message="must not be empty; send null to delete it"))
    return errors


def too_many(count: int, field: str = "secrets") -> FieldError:
    return FieldError(field=field, message=f"would hold {count} secrets once merged; the most is {MAX_SECRETS}")


def secret_values_of(secrets: Mapping[str, object] | None) -> list[str]:
    """The string values of a `secrets` body, for redaction (a merge's null carries no value)."""
    return [v for v in (secrets or {}).values() if isinstance(v, str)]
