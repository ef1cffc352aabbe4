"""Sandboxed execution of users' JavaScript polling code.

Public API: ``SandboxPool`` (spawn/close worker processes, ``check_syntax``,
``run``), its value types ``SandboxLimits``, ``CodeError``, ``RunResult`` and
the ``SandboxUnavailable`` exception. ``Fetcher`` is exported so callers and
tests can inject a resolver or address policy.
"""

from .contracts import CodeError, RunResult, SandboxBusy, SandboxLimits, SandboxUnavailable
from .fetcher import Fetcher, FetchError
from .pool import SandboxPool

__all__ = [
    "CodeError",
    "FetchError",
    "Fetcher",
    "RunResult",
    "SandboxLimits",
    "SandboxBusy",
    "SandboxPool",
    "SandboxUnavailable",
]
