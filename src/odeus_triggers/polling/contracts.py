"""Value types shared by the pool, the fetcher and the callers."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SandboxLimits:
    workers: int = 2
    wall_time_s: float = 10.0
    memory_bytes: int = 64 * 1024 * 1024
    stack_bytes: int = 1024 * 1024
    max_fetches: int = 20
    max_response_bytes: int = 1024 * 1024
    max_events: int = 1000
    max_result_bytes: int = 1024 * 1024
    max_log_entries: int = 100
    max_log_bytes: int = 64 * 1024
    allow_private_network: bool = False

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if self.wall_time_s <= 0:
            raise ValueError("wall_time_s must be positive")
        if self.memory_bytes < 1024 * 1024:
            raise ValueError("memory_bytes must be at least 1 MiB")
        if self.stack_bytes < 64 * 1024:
            raise ValueError("stack_bytes must be at least 64 KiB")


@dataclass(frozen=True)
class CodeError:
    message: str
    line: int | None = None
    column: int | None = None


@dataclass
class RunResult:
    ok: bool
    events: list[dict] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    error: CodeError | None = None
    duration_ms: float = 0.0


class SandboxUnavailable(Exception):
    """The pool cannot serve at all (no worker could be spawned, pool closed, overloaded)."""


def format_seconds(seconds: float) -> str:
    return f"{seconds:g} s"


def format_bytes(n: int) -> str:
    if n >= 1024 * 1024 and n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MiB"
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MiB"
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024} KiB"
    return f"{n} bytes"
