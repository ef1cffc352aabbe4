"""Parent-side validation of what a worker hands back.

The worker already rejects most bad results with nicer messages, but it runs
untrusted code, so everything is checked again here before it leaves the
sandbox layer.
"""

from __future__ import annotations

import json
import math

from .contracts import SandboxLimits, format_bytes
from .js_prelude import LOG_TRUNCATED


class InvalidResult(ValueError):
    pass


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def validate_events(value: object, limits: SandboxLimits) -> list[dict]:
    """Return the events, or raise InvalidResult with a message for the user."""
    if not isinstance(value, list):
        raise InvalidResult(f"Result must be an array of objects, got {_describe(value)}")
    if len(value) > limits.max_events:
        raise InvalidResult(
            f"Result has {len(value)} events; at most {limits.max_events} are allowed per poll"
        )
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidResult(
                f"Result must be an array of objects; item {index} is {_describe(item)}"
            )
        if "id" not in item:
            raise InvalidResult(f"Result must be an array of objects; item {index} has no id")
        event_id = item["id"]
        # bool is an int subclass, and true/false make useless dedup keys.
        if isinstance(event_id, bool) or not isinstance(event_id, (str, int, float)):
            raise InvalidResult(
                f"Result item {index} has an id of type {_describe(event_id)}; "
                "it must be a string or a number"
            )
        if isinstance(event_id, float) and not math.isfinite(event_id):
            raise InvalidResult(f"Result item {index} has a non-finite id")
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > limits.max_result_bytes:
        raise InvalidResult(
            f"Result is {format_bytes(size)} when serialized; "
            f"the limit is {format_bytes(limits.max_result_bytes)}"
        )
    return value


def cap_logs(raw: object, limits: SandboxLimits) -> list[str]:
    """Re-apply the log caps; the worker's own capping is not trusted."""
    if not isinstance(raw, list):
        return []
    out: list[str] = []
    used = 0
    for entry in raw:
        text = entry if isinstance(entry, str) else str(entry)
        if text == LOG_TRUNCATED:
            out.append(text)
            break
        if len(out) >= limits.max_log_entries:
            out.append(LOG_TRUNCATED)
            break
        size = len(text.encode("utf-8", "replace"))
        if used + size > limits.max_log_bytes:
            room = limits.max_log_bytes - used
            if room > 0:
                out.append(text.encode("utf-8", "replace")[:room].decode("utf-8", "ignore"))
            out.append(LOG_TRUNCATED)
            break
        out.append(text)
        used += size
    return out
