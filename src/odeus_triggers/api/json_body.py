"""Reading a JSON request body into a request model, with every problem reported at once.

FastAPI's own body handling answers 422 and cannot merge cross-field rules into the same answer,
so the API routes read the body through `json_body(...)` instead, and declare it in OpenAPI.
"""

import difflib
import json
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from ..errors import FieldError, UnsupportedMediaType, ValidationFailed

CrossFieldRules = Callable[[Any], list[FieldError]]
M = TypeVar("M", bound=BaseModel)

_MESSAGES = {
    "string_pattern_mismatch": "must not contain control characters (U+0000 to U+001F)",
    "extra_forbidden": "is not a known field",
    "missing": "is required",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "int_type": "must be an integer",
    "list_type": "must be an array",
    "model_type": "must be an object",
    "dict_type": "must be an object",
    "model_attributes_type": "must be an object",
    "enum": "must be one of {expected}",
    "literal_error": "must be {expected}",
}


MAX_NAME_IN_PATH = 64


def _printable_name(name: object) -> str:
    # An unknown key is the client's text: keep the answer small and free of control characters.
    text = "".join(ch if ch.isprintable() else "\ufffd" for ch in str(name)[: MAX_NAME_IN_PATH + 1])
    return text if len(text) <= MAX_NAME_IN_PATH else text[:MAX_NAME_IN_PATH] + "…"


def field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            name = _printable_name(part)
            path += f".{name}" if path else name
    return path


def _message(err: Any, model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "string_too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else f"must have at least {ctx['min_length']} characters"
    if kind == "string_too_long":
        return f"must be at most {ctx['max_length']} characters"
    if kind == "too_short":
        return f"must have at least {ctx['min_length']} item{'s' if ctx['min_length'] != 1 else ''}"
    if kind == "too_long":
        return f"must have at most {ctx['max_length']} items"
    if kind == "extra_forbidden":
        return _unknown_field_message(model, loc)
    template = _MESSAGES.get(kind)
    if template:
        return template.format(**ctx)
    # Pydantic's own wording never contains the submitted value (we drop `input`).
    return err["msg"][0].lower() + err["msg"][1:]


def _unknown_field_message(model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    owner: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        annotation = owner.model_fields[part].annotation if part in getattr(owner, "model_fields", {}) else None
        owner = _model_in(annotation)
        if owner is None:
            return "is not a known field"
    known = list(owner.model_fields)
    hint = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6) or [
        k for k in known if k.lower() == str(loc[-1]).lower()
    ]
    return f"is not a known field; did you mean {hint[0]!r}?" if hint else "is not a known field"


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def validation_errors(model: type[BaseModel], exc: ValidationError) -> list[FieldError]:
    return [
        FieldError(field=field_path(err["loc"]) or "body", message=_message(err, model, err["loc"]))
        for err in exc.errors(include_url=False, include_input=False)
    ]


def is_json_media_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def parse_json_body(raw: bytes, model: type[M], rules: CrossFieldRules | None = None) -> M:
    """Validate `raw` into `model`; raise ValidationFailed listing every problem."""
    if not raw.strip():
        raise ValidationFailed.of([FieldError(field="body", message="is required: send a JSON object")])
    try:
        parsed = model.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        if first["type"] == "json_invalid":
            reason = (first.get("ctx") or {}).get("error", "malformed")
            raise ValidationFailed.of([FieldError(field="body", message=f"is not valid JSON: {reason}")]) from None
        if first["type"] == "model_type" and not first["loc"]:
            raise ValidationFailed.of([FieldError(field="body", message="must be a JSON object")]) from None
        errors = validation_errors(model, exc)
        if rules is not None:
            errors += rules(json.loads(raw))
        raise ValidationFailed.of(errors) from None
    if rules is not None:
        errors = rules(parsed.model_dump(mode="json"))
        if errors:
            raise ValidationFailed.of(errors)
    return parsed


def json_body(model: type[M], rules: CrossFieldRules | None = None) -> Callable[..., Any]:
    """A dependency that yields the validated body (size and media type are checked in the edge middleware)."""

    async def dependency(request: Request) -> M:
        raw = await request.body()
        if raw and not is_json_media_type(request.headers.get("content-type")):
            raise UnsupportedMediaType()
        return parse_json_body(raw, model, rules)

    dependency.__name__ = f"{model.__name__}_body"
    return dependency


def openapi_body(model: type[BaseModel], example: dict[str, Any] | None = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
    if example is not None:
        media["example"] = example
    return {"requestBody": {"required": True, "content": {"application/json": media}}}


def validation_errors_from_fastapi(exc: Any) -> list[FieldError]:
    """FastAPI's own parameter errors (query, header), with `body`/`path` prefixes dropped."""
    out = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        if loc and loc[0] in ("body", "path", "query", "header"):
            loc = loc[1:]
        message = err.get("msg", "is invalid")
        out.append(FieldError(field=field_path(loc) or "request", message=message[0].lower() + message[1:]))
    return out or [FieldError(field="request", message="is invalid")]
