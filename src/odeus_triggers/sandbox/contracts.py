"""Value types shared by the pool, the fetcher and the callers."""

from __future__ import annotations

import math
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
    # Syntax checks get workers of their own, which test runs and polls can never occupy.
    check_workers: int = 1
    # None: half the run workers, at least one.
    max_runs_per_tenant: int | None = None
    max_queued_per_tenant: int = 16
    # Who workers become when the API runs as root (65534: nobody/nogroup on Debian).
    worker_uid: int = 65534
    worker_gid: int = 65534

    @property
    def runs_per_tenant(self) -> int:
        if self.max_runs_per_tenant is not None:
            return self.max_runs_per_tenant
        return max(1, self.workers // 2)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if self.check_workers < 1:
            raise ValueError("check_workers must be at least 1")
        if self.max_runs_per_tenant is not None and self.max_runs_per_tenant < 1:
            raise ValueError("max_runs_per_tenant must be at least 1")
        if self.wall_time_s <= 0:
            raise ValueError("wall_time_s must be positive")
        if self.memory_bytes < 1024 * 1024:
            raise ValueError("memory_bytes must be at least 1 MiB")
        if self.stack_bytes < 64 * 1024:
            raise ValueError("stack_bytes must be at least 64 KiB")
        if self.worker_uid < 1 or self.worker_gid < 1:
            raise ValueError("worker_uid and worker_gid must not be root's (0)")


@dataclass(frozen=True)
class CodeError:
    message: str
    line: int | None = None
    column: int | None = None
    # What kind of failure, for a poll's outcome: "error" (thrown, or the sandbox failed),
    # "timeout", "memory_limit", or "invalid_output" (the result is not a valid array of events).
    kind: str = "error"


@dataclass
class RunResult:
    ok: bool
    events: list[dict] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    error: CodeError | None = None
    duration_ms: float = 0.0


class SandboxUnavailable(Exception):
    """The pool cannot serve at all (no worker could be spawned, pool closed, overloaded)."""


class SandboxBusy(SandboxUnavailable):
    """This tenant has as many runs in progress and waiting as it may have; others are served."""


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


def code_error(message: object, line: object, column: object, kind: str = "error") -> CodeError:
    """A CodeError from what a worker reported, trusting none of its types or values."""

    def position(value: object) -> int | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if not math.isfinite(value) or value < 1:
            return None
        return int(value)

    text = message if isinstance(message, str) and message else "Polling code failed"
    return CodeError(message=text[:4096], line=position(line), column=position(column), kind=kind)
