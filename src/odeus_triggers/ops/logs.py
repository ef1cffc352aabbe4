"""JSON log lines, one object per line, with secrets scrubbed from every string they carry.

Scrubbing is a second line of defence: code never logs keys, headers or bodies on purpose, but
driver errors and tracebacks may quote a connection URL or a statement.
"""

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import make_url

from ..config import Settings
from .redaction import RedactingFilter

APP_LOGGER = "odeus_triggers"
JSON_HANDLER = "odeus_json"

_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/?#@\s]*:)[^@\s]+@", re.IGNORECASE)
_API_KEY = re.compile(r"\bodk_[0-9A-Za-z]+")
_BEARER = re.compile(r"\b(bearer)\s+[^\s\"',;]+", re.IGNORECASE)
# Everything a LogRecord has before `extra=` adds to it; the rest is ours to print. uvicorn's
# `color_message` repeats the message with terminal escapes.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "color_message"
}


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()

    def add_secrets(self, *secrets: str | None) -> None:
        # Short strings would scrub half the log; a password that short is no secret anyway.
        self._secrets.update(s for s in secrets if s and len(s) >= 4)

    def scrub(self, text: str) -> str:
        text = _URL_PASSWORD.sub(r"\g<head>***@", text)
        text = _API_KEY.sub("odk_***", text)
        text = _BEARER.sub(r"\1 ***", text)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, (bool, int, float)) or value is None:
            return value
        return self.scrub(str(value))

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": self.scrub(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                line[key] = self._clean(value)
        if record.exc_info and record.exc_info[0] is not None:
            line["exc_type"] = record.exc_info[0].__name__
            # RedactingFilter leaves its redacted rendering in exc_text; formatting anew would undo it.
            line["traceback"] = self.scrub(record.exc_text or self.formatException(record.exc_info))
        elif record.exc_text:
            line["traceback"] = self.scrub(record.exc_text)
        return json.dumps(line)


def settings_secrets(settings: Settings) -> list[str | None]:
    secrets: list[str | None] = []
    for url in (settings.database_url, settings.redis_url):
        if url is None:
            continue
        try:
            secrets.append(make_url(url.get_secret_value()).password)
        except Exception:  # not a URL we can parse: the regex still catches user:password@
            continue
    return secrets


class StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time, as test runners swap it per test."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.name = JSON_HANDLER

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def _json_handler() -> logging.Handler | None:
    for handler in logging.getLogger(APP_LOGGER).handlers:
        if handler.name == JSON_HANDLER and isinstance(handler.formatter, JsonFormatter):
            return handler
    return None


# Loggers whose handlers, if a host application gave them any, must redact too; the rest of the
# library loggers propagate to the root's handlers or, with none, to logging.lastResort.
_COVERED_LOGGERS = ("", APP_LOGGER, "uvicorn", "uvicorn.error", "uvicorn.access", "sqlalchemy", "sqlalchemy.engine")


def _add_redaction(handler: logging.Handler) -> None:
    if not any(isinstance(f, RedactingFilter) for f in handler.filters):
        handler.addFilter(RedactingFilter())


def install_redaction() -> None:
    """Put a RedactingFilter on every handler that the app's, uvicorn's and sqlalchemy's records reach."""
    for name in _COVERED_LOGGERS:
        for handler in logging.getLogger(name).handlers:
            _add_redaction(handler)
    if logging.lastResort is not None:
        _add_redaction(logging.lastResort)


def configure_logging(settings: Settings) -> None:
    """Give the app's loggers a JSON handler on stderr, once per process, at ODEUS_LOG_LEVEL, and
    make every handler redact the secret values of the operation that logs (see `redaction`).

    `odeus-triggers serve` has already installed it through uvicorn's log config (see
    `uvicorn_log_config`); this only adds the secrets of these settings to it.
    """
    logger = logging.getLogger(APP_LOGGER)
    logger.setLevel(settings.log_level)
    handler = _json_handler()
    if handler is None:
        handler = StderrHandler()
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
    handler.formatter.add_secrets(*settings_secrets(settings))  # type: ignore[union-attr]
    install_redaction()


def uvicorn_log_config(level: str) -> dict[str, Any]:
    """A logging config for uvicorn in which its own lines and the app's share one JSON handler."""
    json_handler = {"handlers": [JSON_HANDLER], "level": level, "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "filters": {"redact": {"()": RedactingFilter}},
        "handlers": {JSON_HANDLER: {"()": StderrHandler, "formatter": "json", "filters": ["redact"]}},
        "loggers": {
            "uvicorn": json_handler,
            "uvicorn.error": {"level": level},
            # The app writes its own access line, with the route template and the workspace.
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            APP_LOGGER: json_handler,
        },
    }
