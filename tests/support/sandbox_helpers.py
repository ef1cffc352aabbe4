"""Test helpers of the sandbox: process accounting via /proc (the fake upstream is fake_http.py)."""

from __future__ import annotations

import os
from pathlib import Path


def child_pids(parent: int | None = None) -> dict[int, str]:
    """Children of ``parent`` (default: this process) and their state letter (Z = zombie)."""
    parent = os.getpid() if parent is None else parent
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command name: state, ppid, ...
        rest = stat.rsplit(")", 1)[1].split()
        if int(rest[1]) == parent:
            found[int(entry.name)] = rest[0]
    return found
