"""Shared schema building blocks: the camelCase base models and the string rules of the contract."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints, WithJsonSchema

# C0 control characters are refused everywhere; multi-line texts may keep tab, LF and CR.
NO_CONTROL = r"^[^\x00-\x1f]*$"
TEXT_NO_CONTROL = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f]*$"
NOT_BLANK_NO_CONTROL = r"^[^\x00-\x1f]*[^\s\x00-\x1f][^\x00-\x1f]*$"
# What trimming removes: Unicode White_Space (Pydantic's `strip_whitespace`), tab, LF and CR included.
WHITE_SPACE = r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def line(max_length: int, *, min_length: int = 0) -> type[str]:
    """A single-line string: no control characters at all."""
    return Annotated[  # type: ignore[return-value]
        str, StringConstraints(min_length=min_length, max_length=max_length, pattern=NO_CONTROL)
    ]


def text(max_length: int) -> type[str]:
    """A multi-line string: tab, LF and CR allowed, other control characters refused."""
    return Annotated[  # type: ignore[return-value]
        str, StringConstraints(max_length=max_length, pattern=TEXT_NO_CONTROL)
    ]


def name_pattern(max_length: int) -> str:
    """The exact set of strings `name(max_length)` accepts, as one regular expression.

    JSON Schema's `maxLength` counts the raw string, but a name is trimmed first, so the length
    rule is spelled out here instead: optional white space, then 1 to `max_length` characters
    that start and end with neither white space nor a control character and hold no control
    character, then optional white space.
    """
    edge = f"[^{WHITE_SPACE}\\x00-\\x1f]"
    return f"^[{WHITE_SPACE}]*{edge}(?:[^\\x00-\\x1f]{{0,{max_length - 2}}}{edge})?[{WHITE_SPACE}]*$"


def name(max_length: int) -> type[str]:
    """A trimmed, non-blank name; its length counts after trimming."""
    return Annotated[  # type: ignore[return-value]
        str,
        StringConstraints(
            strip_whitespace=True, min_length=1, max_length=max_length, pattern=NOT_BLANK_NO_CONTROL
        ),
        # The document says exactly what is accepted, white space around the name included.
        WithJsonSchema({
            "type": "string",
            "minLength": 1,
            "pattern": name_pattern(max_length),
            "description": f"Trimmed of white space, then 1 to {max_length} characters without control characters.",
        }),
    ]


class RequestModel(BaseModel):
    # strict: `"required": "yes"` is an error, not a guess; forbid: typos such as `pollingcode`
    # are reported instead of silently dropped.
    model_config = ConfigDict(strict=True, extra="forbid")


class ResponseModel(BaseModel):
    pass
