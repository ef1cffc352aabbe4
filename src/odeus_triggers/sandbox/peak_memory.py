"""Peak-RSS probe of a sandbox worker (loaded by path by worker.py; imports nothing of the package)."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # as in worker.py: typing is not imported in the worker
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Literal


class PeakMemory:
    """Peak-RSS probe for the one out-of-memory case QuickJS cannot report.

    When the heap is full to the last byte, QuickJS cannot even allocate its
    "out of memory" error and the script sees a bare ``null`` thrown, which
    looks exactly like ``throw null``. The process's peak RSS tells the two
    apart. The peak only means something if it starts near the current RSS
    and freed heap has been handed back, so when an earlier run left either
    one high, the heap is trimmed and the peak reset (/proc/self/clear_refs)
    before the next run. Without /proc the probe is off and the error stays
    "Uncaught null".

    The files are opened once, by ``open()`` at start-up, because the seccomp
    filter forbids opening anything afterwards; they are re-read in place.
    """

    def __init__(self) -> None:
        self.start_kib: int | None = None
        self.baseline_kib: int | None = None
        self._trim: Callable[[int], int] | Literal[False] | None = None
        self._status: int | None = None
        self._clear_refs: int | None = None

    def open(self) -> None:
        try:
            self._status = os.open("/proc/self/status", os.O_RDONLY | os.O_CLOEXEC)
            self._clear_refs = os.open("/proc/self/clear_refs", os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            pass
        try:
            import ctypes

            self._trim = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):
            self._trim = False

    def _read(self) -> tuple[int, int] | None:
        if self._status is None:
            return None
        rss = hwm = None
        try:
            for line in os.pread(self._status, 16384, 0).splitlines():
                if line.startswith(b"VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith(b"VmHWM:"):
                    hwm = int(line.split()[1])
        except (OSError, ValueError, IndexError):
            return None
        return (rss, hwm) if rss is not None and hwm is not None else None

    def _reset(self) -> None:
        if self._trim:
            self._trim(0)
        if self._clear_refs is None:
            raise OSError("/proc/self/clear_refs is not open")
        os.write(self._clear_refs, b"5")

    def before_run(self, memory_bytes: int) -> None:
        self.start_kib = None
        now = self._read()
        if now is None:
            return
        if self.baseline_kib is None:
            self.baseline_kib = now[0]
        slack = memory_bytes // 4096
        if now[1] - now[0] > slack or now[0] - self.baseline_kib > slack:
            try:
                self._reset()
            except OSError:
                return
            now = self._read()
            if now is None or now[1] - now[0] > slack:
                return
        self.start_kib = now[0]

    def growth_bytes(self) -> int | None:
        now = self._read()
        if now is None or self.start_kib is None:
            return None
        return (now[1] - self.start_kib) * 1024
