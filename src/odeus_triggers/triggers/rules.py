"""Rules of the trigger body that span several fields, checked on the raw JSON.

They run even when the schema check failed elsewhere, so that one 400 lists every problem.
"""

from typing import Any

from ..errors import FieldError
from .slugs import field_slug


def _as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def cross_field_errors(body: Any) -> list[FieldError]:
    if not isinstance(body, dict) or not isinstance(body.get("inputFields"), list):
        return []
    errors: list[FieldError] = []
    seen_slugs: dict[str, int] = {}
    for i, field in enumerate(body["inputFields"]):
        if not isinstance(field, dict):
            continue
        where = f"inputFields[{i}]"
        ftype = field.get("type") or "TEXT"
        options = field.get("options")
        if ftype == "SELECT":
            if options is None:
                errors.append(FieldError(field=f"{where}.options", message="is required for a SELECT field"))
            elif isinstance(options, list):
                errors.extend(_duplicate_values(where, options))
        elif isinstance(ftype, str):
            if options is not None:
                errors.append(FieldError(field=f"{where}.options", message="is only allowed on SELECT fields"))
            if field.get("allowMultiSelect") is True:
                errors.append(
                    FieldError(field=f"{where}.allowMultiSelect", message="is only allowed on SELECT fields")
                )
        label = _as_str(field.get("label"))
        if label is not None and label.strip():
            slug = field_slug(label.strip())
            if slug in seen_slugs:
                first = seen_slugs[slug]
                errors.append(
                    FieldError(
                        field=f"{where}.label",
                        message=f'gives the field slug "{slug}", as inputFields[{first}].label does; '
                        "labels must give distinct slugs",
                    )
                )
            else:
                seen_slugs[slug] = i
    return errors


def _duplicate_values(where: str, options: list[Any]) -> list[FieldError]:
    errors = []
    seen: dict[str, int] = {}
    for j, option in enumerate(options):
        value = _as_str(option.get("value")) if isinstance(option, dict) else None
        if value is None:
            continue
        if value in seen:
            errors.append(
                FieldError(
                    field=f"{where}.options[{j}].value",
                    message=f"duplicates options[{seen[value]}].value; values must be unique within the field",
                )
            )
        else:
            seen[value] = j
    return errors
