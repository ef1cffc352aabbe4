"""Cursor pagination for the list routes: `?limit=` (1 to 200, default 50) and an opaque `?cursor=`.

A cursor is the sort key of the last item returned, so that a page is one index range scan and
stays right while rows are added or deleted between pages.
"""

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query

from ..errors import FieldError, ValidationFailed
from ..timestamps import as_utc

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page starts: after the item with this (time, id)."""

    at: datetime
    id: str


@dataclass(frozen=True, slots=True)
class Page:
    limit: int
    after: Position | None


def encode_cursor(at: datetime, item_id: uuid.UUID | str) -> str:
    raw = json.dumps([as_utc(at).isoformat(), str(item_id)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _bad(field: str, message: str) -> ValidationFailed:
    return ValidationFailed.of([FieldError(field=field, message=message)])


def decode_cursor(cursor: str) -> Position:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, item_id = json.loads(raw)
        return Position(as_utc(datetime.fromisoformat(at)), str(item_id))
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise _bad("cursor", "is not a cursor returned by this list; start again without one") from None


async def page_param(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Items per page (default {DEFAULT_LIMIT}).")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=512, description="The `nextCursor` of the previous page; absent for the first page.")
    ] = None,
) -> Page:
    return Page(limit, decode_cursor(cursor) if cursor is not None else None)


PageDep = Annotated[Page, Depends(page_param)]
