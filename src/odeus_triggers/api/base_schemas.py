"""Shared schema building blocks: the camelCase base models and the string rules of the contract."""

import re
import unicodedata
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, WithJsonSchema
from pydantic_core import PydanticCustomError, PydanticKnownError

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


# Unicode's Cc and Cf characters (as of Unicode 14, Python 3.11's `unicodedata`): controls, and
# the invisible format characters (bidi overrides, zero-width characters, U+FEFF) with which one
# name can pass for another or reorder the text around it. A table rather than
# `unicodedata.category`, so that the schema's pattern and the server read the same one.
CONTROL_OR_FORMAT = (
    (0x00, 0x1F), (0x7F, 0x9F), (0xAD, 0xAD), (0x600, 0x605), (0x61C, 0x61C), (0x6DD, 0x6DD),
    (0x70F, 0x70F), (0x890, 0x891), (0x8E2, 0x8E2), (0x180E, 0x180E), (0x200B, 0x200F),
    (0x202A, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F), (0xFEFF, 0xFEFF), (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD), (0x110CD, 0x110CD), (0x13430, 0x13438), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0001, 0xE0001), (0xE0020, 0xE007F),
)
# The rest of Unicode's Default_Ignorable_Code_Point: allowed in a name (a variation selector is
# part of an emoji), but a name made only of them (say U+3164 HANGUL FILLER) shows nothing.
IGNORABLE = (
    (0x34F, 0x34F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180D), (0x180F, 0x180F),
    (0x2065, 0x2065), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8),
    (0xE0000, 0xE0000), (0xE0002, 0xE001F), (0xE0080, 0xE0FFF),
)


def _escaped(cp: int) -> str:
    # Astral characters go in as themselves (the server's own expressions; the schema's pattern has
    # none, see `display_name_pattern`): `\U…` is Python-only and `\u{…}` is ECMA-only.
    return f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}" if cp < 0x10000 else chr(cp)


def _class_body(ranges: tuple[tuple[int, int], ...]) -> str:
    return "".join(_escaped(lo) if lo == hi else f"{_escaped(lo)}-{_escaped(hi)}" for lo, hi in ranges)


CONTROL_OR_FORMAT_CLASS = _class_body(CONTROL_OR_FORMAT)
IGNORABLE_CLASS = _class_body(IGNORABLE)
_CONTROL_OR_FORMAT_CHAR = re.compile(f"[{CONTROL_OR_FORMAT_CLASS}]")
_VISIBLE_CHAR = re.compile(f"[^{WHITE_SPACE}{CONTROL_OR_FORMAT_CLASS}{IGNORABLE_CLASS}]")


def _bmp(ranges: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    return tuple((lo, hi) for lo, hi in ranges if hi < 0x10000)


# The schema's pattern names the characters of the Basic Multilingual Plane only. A validator that
# reads ECMA-262 without the `u` flag (Spectral's `regex` format) sees an astral character as two
# UTF-16 code units, so that a range of them is "out of order" and the whole document an error.
# The astral ones (U+110BD … U+E0FFF: tag characters, variation selectors supplement, a few
# format controls) are refused by the server all the same.
_SCHEMA_CONTROL_OR_FORMAT_CLASS = _class_body(_bmp(CONTROL_OR_FORMAT))
_SCHEMA_IGNORABLE_CLASS = _class_body(_bmp(IGNORABLE))
ASTRAL_REFUSED = tuple((lo, hi) for lo, hi in (*CONTROL_OR_FORMAT, *IGNORABLE) if hi >= 0x10000)


def display_name_pattern(max_length: int) -> str:
    """What `display_name(max_length)` accepts, as one regular expression.

    As `name_pattern`, with every Cc and Cf character refused, and a lookahead for one visible
    character. What it cannot say: the length counts after NFC normalization, which shortens
    decomposed text (`e` + U+0301 is one character, `é`); and the astral characters of both tables
    (ASTRAL_REFUSED), which it leaves out so that ECMA-262 read without the `u` flag can compile it.
    """
    edge = f"[^{WHITE_SPACE}{_SCHEMA_CONTROL_OR_FORMAT_CLASS}]"
    inner = f"[^{_SCHEMA_CONTROL_OR_FORMAT_CLASS}]"
    visible = f"[^{WHITE_SPACE}{_SCHEMA_CONTROL_OR_FORMAT_CLASS}{_SCHEMA_IGNORABLE_CLASS}]"
    ahead = f"(?=[{WHITE_SPACE}{_SCHEMA_IGNORABLE_CLASS}]*{visible})"
    return f"^[{WHITE_SPACE}]*{ahead}{edge}(?:{inner}{{0,{max_length - 2}}}{edge})?[{WHITE_SPACE}]*$"


def _described(char: str) -> str:
    kind = "a control character" if unicodedata.category(char) == "Cc" else "an unassigned code point"
    return f"U+{ord(char):04X} ({unicodedata.name(char, kind)})"


def _checked_display_name(max_length: int) -> Callable[[str], str]:
    def check(value: str) -> str:
        # After trimming (Pydantic's `strip_whitespace`), so that a name and its padded copy are one;
        # NFC, so that `Café` typed as `e` + U+0301 is the same name (and the same 409) as `Café`.
        value = unicodedata.normalize("NFC", value)
        if len(value) > max_length:
            raise PydanticKnownError("string_too_long", {"max_length": max_length})
        if not _VISIBLE_CHAR.search(value):
            # Trimmed, so the first character is not white space: it names what was sent instead.
            raise PydanticCustomError(
                "name_not_visible",
                "must contain a visible character; it holds only white space and invisible characters "
                f"such as {_described(value[0])}",
            )
        bad = _CONTROL_OR_FORMAT_CHAR.search(value)
        if bad:
            raise PydanticCustomError(
                "name_control_character",
                "must not contain control or invisible formatting characters (Unicode Cc and Cf); "
                f"found {_described(bad.group())} at character {bad.start() + 1}",
            )
        return value

    return check


def display_name(max_length: int) -> type[str]:
    """The name of a trigger or integration: trimmed, NFC-normalized, visible, no Cc or Cf character."""
    return Annotated[  # type: ignore[return-value]
        str,
        StringConstraints(strip_whitespace=True, min_length=1),
        AfterValidator(_checked_display_name(max_length)),
        WithJsonSchema({
            "type": "string",
            "minLength": 1,
            "pattern": display_name_pattern(max_length),
            "description": f"Trimmed of white space and normalized to NFC, then 1 to {max_length} characters, "
            "at least one of them visible, and no control or invisible formatting character "
            "(Unicode Cc and Cf: C0 and C1 controls, bidi overrides, zero-width characters, U+FEFF).",
        }),
    ]


def without_defaults(schema: dict[str, Any]) -> None:
    """`json_schema_extra` of every request model: drop `default` from its properties.

    TypeScript generators (openapi-typescript) read a property with a `default` as one that is
    always present, and so make it required: `{"name": …}` would not compile for lack of
    `description`. The server applies the defaults itself, and each field's description states
    its default in words.
    """
    for prop in schema.get("properties", {}).values():
        if isinstance(prop, dict):
            prop.pop("default", None)


class RequestModel(BaseModel):
    # strict: `"required": "yes"` is an error, not a guess; forbid: typos such as `pollingcode`
    # are reported instead of silently dropped.
    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra=without_defaults)


class ResponseModel(BaseModel):
    pass


# Here because both trigger bodies and an integration's trigger summaries show it; a docstring
# would become its description in the OpenAPI document.
class TriggerType(StrEnum):
    POLLING = "POLLING"
    WEBHOOK = "WEBHOOK"


def without_null_defaults(schema: dict[str, Any]) -> None:
    """Drop `default: null` from the properties (see `without_defaults`, which every request
    model applies, and which drops the other defaults too)."""
    for prop in schema.get("properties", {}).values():
        if isinstance(prop, dict) and "default" in prop and prop["default"] is None:
            del prop["default"]
