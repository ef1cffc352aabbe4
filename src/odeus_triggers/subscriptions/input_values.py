"""A subscription's input values: checked with the test run's rules, PASSWORD values sealed one by
one, and shown back as `{"set": true}`, which a PATCH may send back to keep the stored value."""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import FieldError
from ..secretbox import Keyring
from ..triggers.inputs import InputSpec, input_errors, input_path
from ..triggers.schemas import FieldType

KEPT = {"set": True}
# What a sealed value stands for while the inputs are checked: its type was checked when it was set.
_SEALED_STANDS_FOR = "\x00sealed"


def input_context(subscription_id: uuid.UUID, slug: str) -> str:
    return f"subscription-input:{subscription_id}:{slug}"


@dataclass(frozen=True, slots=True)
class StoredInputs:
    plain: dict[str, Any]
    sealed: dict[str, str]


def _password_slugs(specs: tuple[InputSpec, ...]) -> set[str]:
    return {s.slug for s in specs if s.type == FieldType.PASSWORD}


def shown(plain: Mapping[str, Any], sealed: Mapping[str, str]) -> dict[str, Any]:
    """The inputs as a read shows them."""
    return {**plain, **{slug: dict(KEPT) for slug in sealed}}


def stored_input_errors(specs: tuple[InputSpec, ...], plain: Mapping[str, Any], sealed: Mapping[str, str]) -> list[FieldError]:
    """Whether stored inputs still satisfy the trigger's fields (after a change to the trigger)."""
    return input_errors(specs, {**plain, **{slug: _SEALED_STANDS_FOR for slug in sealed}})


def checked_inputs(
    specs: tuple[InputSpec, ...],
    inputs: Mapping[str, Any],
    *,
    keyring: Keyring,
    subscription_id: uuid.UUID,
    kept: Mapping[str, str],
) -> tuple[StoredInputs | None, list[FieldError]]:
    """Split `inputs` into what is stored plain and what is sealed; `kept` are the tokens already
    stored, which `{"set": true}` keeps. Every problem comes back at once, and no value is named."""
    passwords = _password_slugs(specs)
    errors: list[FieldError] = []
    as_checked: dict[str, Any] = {}
    for slug, value in inputs.items():
        if slug in passwords and value == KEPT:
            if slug not in kept:
                errors.append(FieldError(field=input_path(slug), message="has no stored value to keep; send the value"))
                continue
            as_checked[slug] = _SEALED_STANDS_FOR
        else:
            as_checked[slug] = value
    errors.extend(input_errors(specs, as_checked))
    if errors:
        return None, errors
    plain = {slug: v for slug, v in inputs.items() if slug not in passwords and v is not None}
    sealed = {
        slug: kept[slug] if value == KEPT else keyring.seal(value, input_context(subscription_id, slug))
        for slug, value in inputs.items()
        if slug in passwords and value is not None
    }
    return StoredInputs(plain, sealed), []


def password_values(keyring: Keyring, subscription_id: uuid.UUID, sealed: Mapping[str, str]) -> dict[str, str]:
    """The sealed inputs opened, for the code that runs and for redaction."""
    return {slug: keyring.open(token, input_context(subscription_id, slug)) for slug, token in sealed.items()}
