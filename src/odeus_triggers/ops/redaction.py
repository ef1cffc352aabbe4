"""Redaction of the secret values an operation knows: in its answers and in every log line it causes.

The values live in a ContextVar, so each request (Starlette runs each in a task of its own) and
later each poll only ever redacts with its own. The var holds an immutable frozenset that an
addition replaces: a value set in one task can never show up in a sibling task that copied the same
parent context, and a value set in the route is still seen by the middlewares of the same task that
log after it returns (the access log, uvicorn's "Exception in ASGI application").
"""

import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

REDACTED = "[redacted]"
# RUNTIME.md: values match from 4 characters up; shorter ones would blank out ordinary words.
MIN_LENGTH = 4

_known: ContextVar[frozenset[str]] = ContextVar("odeus_secret_values", default=frozenset())


def remember_secrets(values: Iterable[object]) -> None:
    """Add `values` (strings of 4+ characters; anything else is ignored) to the current operation's."""
    fresh = {v for v in values if isinstance(v, str) and len(v) >= MIN_LENGTH}
    current = _known.get()
    if fresh - current:
        _known.set(current | fresh)


def known_secrets() -> frozenset[str]:
    return _known.get()


@contextmanager
def secret_scope() -> Iterator[None]:
    """An operation of its own, starting with no values: for work that runs many operations in one
    task (a poll loop), so one subscription's values do not pile up into the next one's."""
    token = _known.set(frozenset())
    try:
        yield
    finally:
        _known.reset(token)


@lru_cache(maxsize=256)
def _pattern(values: frozenset[str]) -> re.Pattern[str]:
    # One pass over the text, longest first: a value that contains another is replaced whole, and a
    # value that happens to occur in "[redacted]" is never matched inside an earlier replacement.
    return re.compile("|".join(re.escape(v) for v in sorted(values, key=len, reverse=True)))


def _usable(values: Iterable[str] | None) -> frozenset[str]:
    if values is None:
        return _known.get()
    return frozenset(v for v in values if isinstance(v, str) and len(v) >= MIN_LENGTH)


def redact(text: str, values: Iterable[str] | None = None) -> str:
    """`text` with every occurrence of a secret value (those of the current operation by default)
    replaced with `[redacted]`."""
    usable = _usable(values)
    if not usable or not text:
        return text
    return _pattern(usable).sub(REDACTED, text)


def redact_json(value: Any, values: Iterable[str] | None = None) -> Any:
    """A copy of a JSON-like value with every string redacted, the keys of objects too."""
    usable = _usable(values)
    if not usable:
        return value
    return _walk(value, usable)


def _walk(value: Any, usable: frozenset[str]) -> Any:
    if isinstance(value, str):
        return redact(value, usable)
    if isinstance(value, dict):
        return {(redact(k, usable) if isinstance(k, str) else k): _walk(v, usable) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_walk(v, usable) for v in value]
    return value


_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class RedactingFilter(logging.Filter):
    """Rewrites a record in place with the values of the current operation: its message (args
    merged in), its exception and stack text, and the string fields that `extra=` added.

    Installed on handlers rather than loggers, because a logger's filters do not see the records
    that propagate to it from its children (sqlalchemy.engine.Engine, uvicorn.error)."""

    def filter(self, record: logging.LogRecord) -> bool:
        usable = _known.get()
        if not usable:
            return True
        message = record.getMessage()
        redacted = redact(message, usable)
        if redacted != message or record.args:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            # Formatters reuse exc_text when it is set, so the traceback is rendered once, here.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, usable)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, usable)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, redact(value, usable))
        return True
