"""Shared schema building blocks: the camelCase base models and the string rules of the contract."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

# C0 control characters are refused everywhere; multi-line texts may keep tab, LF and CR.
NO_CONTROL = r"^[^\x00-\x1f]*$"
TEXT_NO_CONTROL = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f]*$"
NOT_BLANK_NO_CONTROL = r"^[^\x00-\x1f]*[^\s\x00-\x1f][^\x00-\x1f]*$"


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


def name(max_length: int) -> type[str]:
    """A trimmed, non-blank name; its length counts after trimming."""
    return Annotated[  # type: ignore[return-value]
        str,
        StringConstraints(
            strip_whitespace=True, min_length=1, max_length=max_length, pattern=NOT_BLANK_NO_CONTROL
        ),
    ]


class RequestModel(BaseModel):
    # strict: `"required": "yes"` is an error, not a guess; forbid: typos such as `pollingcode`
    # are reported instead of silently dropped.
    model_config = ConfigDict(strict=True, extra="forbid")


class ResponseModel(BaseModel):
    pass
