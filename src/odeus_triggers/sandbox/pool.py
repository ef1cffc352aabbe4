"""A small pool of sandbox worker processes, and the parent side of their protocol.

Workers are separate processes so that the API process never runs QuickJS:
a wedged or crashed engine costs us one worker, which is SIGKILLed at the
wall-clock deadline and replaced in the background.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .contracts import CodeError, RunResult, SandboxLimits, SandboxUnavailable, format_bytes, format_seconds
from .fairness import FairGate
from .fetcher import FetchBudget, FetchError, Fetcher
from .results import InvalidResult, cap_logs, validate_events

log = logging.getLogger(__name__)

_WORKER_SCRIPT = Path(__file__).with_name("worker.py")
_SPAWN_TIMEOUT_S = 10.0
# Fresh runtimes per job keep workers clean, but recycling bounds any slow
# leak in the interpreter or the extension.
_MAX_JOBS_PER_WORKER = 500
# The worker's own (CPU-time) limit fires this much before the parent's kill,
# so that in the common case the run ends cooperatively, with its logs, and
# the worker survives.
_COOPERATIVE_MARGIN_S = 0.1
# Waiting for a free worker is bounded by one run's wall time plus room for a
# killed worker's replacement to start, so a busy-but-healthy pool does not
# turn into errors just because a respawn is in flight.
_ACQUIRE_GRACE_S = 1.0


class _WorkerGone(Exception):
    pass


class _TooDeep(Exception):
    """A well-formed message nested deeper than the JSON decoder recurses."""


class _Worker:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.jobs = 0

    @classmethod
    async def spawn(cls, limits: SandboxLimits) -> _Worker:
        config = {
            "address_space_bytes": 2 * limits.memory_bytes + 256 * 1024 * 1024,
            "memory_bytes": limits.memory_bytes,
            "stack_bytes": limits.stack_bytes,
            "worker_uid": limits.worker_uid,
            "worker_gid": limits.worker_gid,
        }
        # Worst case of one line from the worker: result, logs and a request
        # body, each possibly JSON-escaped up to 6 bytes per character.
        line_limit = 6 * (limits.max_result_bytes + limits.max_log_bytes + limits.max_response_bytes) + (1 << 20)
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-I", "-B", str(_WORKER_SCRIPT), json.dumps(config),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
                env={},
                cwd="/",
                close_fds=True,
                start_new_session=True,
                limit=line_limit,
            )
        except OSError as exc:
            raise SandboxUnavailable(f"cannot start a sandbox worker: {exc}") from exc
        worker = cls(proc)
        try:
            hello = await worker.recv(_SPAWN_TIMEOUT_S)
        except (TimeoutError, _WorkerGone, _TooDeep):
            hello = None
        except BaseException:
            # Cancelled mid-spawn (e.g. by close()): never leave the child behind.
            await worker.kill()
            raise
        if not hello or hello.get("type") != "ready":
            await worker.kill()
            raise SandboxUnavailable("a sandbox worker failed to start")
        return worker

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    async def send(self, message: dict) -> None:
        data = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass") + b"\n"
        # One write() puts the whole line in the transport's buffer, so concurrent senders never
        # interleave and need no lock; drain() has supported concurrent waiters since 3.10.
        try:
            self.proc.stdin.write(data)
            await self.proc.stdin.drain()
        except (ConnectionError, RuntimeError, AttributeError) as exc:
            raise _WorkerGone from exc

    async def recv(self, timeout: float) -> dict:
        try:
            async with asyncio.timeout(max(timeout, 0.0)):
                line = await self.proc.stdout.readline()
        except (ValueError, asyncio.LimitOverrunError, ConnectionError) as exc:
            # A line longer than any legitimate message: the worker is not
            # following the protocol, so it is not trusted any further.
            raise _WorkerGone from exc
        if not line:
            raise _WorkerGone
        try:
            message = json.loads(line)
        except RecursionError:
            raise _TooDeep from None
        except ValueError as exc:
            raise _WorkerGone from exc
        if not isinstance(message, dict):
            raise _WorkerGone
        return message

    async def kill(self) -> None:
        if self.proc.returncode is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
        await self.proc.wait()
        if self.proc.stdin is not None:
            self.proc.stdin.close()


class _Slot:
    __slots__ = ("worker",)

    def __init__(self) -> None:
        self.worker: _Worker | None = None


class _Lane:
    """A fixed set of worker slots for one kind of job; a dead worker is replaced off the job path."""

    def __init__(self, name: str, size: int, limits: SandboxLimits) -> None:
        self.name = name
        self.limits = limits
        self.slots = [_Slot() for _ in range(size)]
        self.idle: asyncio.Queue[_Slot] = asyncio.Queue()
        self._refills: set[asyncio.Task] = set()
        self.closed = False

    async def start(self) -> None:
        spawned = await asyncio.gather(*(_Worker.spawn(self.limits) for _ in self.slots), return_exceptions=True)
        failures = [w for w in spawned if isinstance(w, BaseException)]
        if failures:
            for w in spawned:
                if isinstance(w, _Worker):
                    await w.kill()
            raise SandboxUnavailable("cannot start the sandbox workers") from failures[0]
        for slot, worker in zip(self.slots, spawned):
            slot.worker = worker
            self.idle.put_nowait(slot)

    async def close(self) -> None:
        self.closed = True
        for task in list(self._refills):
            task.cancel()
        if self._refills:
            await asyncio.gather(*self._refills, return_exceptions=True)
        for slot in self.slots:
            worker, slot.worker = slot.worker, None
            if worker is not None:
                await worker.kill()

    async def acquire(self) -> tuple[_Slot, _Worker]:
        wait_s = self.limits.wall_time_s + _ACQUIRE_GRACE_S
        try:
            async with asyncio.timeout(wait_s):
                slot = await self.idle.get()
        except TimeoutError:
            raise SandboxUnavailable(
                f"all {len(self.slots)} sandbox {self.name} workers stayed busy for {format_seconds(wait_s)}"
            ) from None
        if self.closed:
            raise SandboxUnavailable("the sandbox pool is closed")
        if slot.worker is None or not slot.worker.alive:
            old, slot.worker = slot.worker, None
            try:
                if old is not None:
                    await old.kill()
                await self.spawn_into(slot)
            except BaseException:
                self.idle.put_nowait(slot)
                raise
        return slot, slot.worker  # type: ignore[return-value]

    async def spawn_into(self, slot: _Slot) -> _Worker:
        worker = await _Worker.spawn(self.limits)
        if self.closed:
            # close() already swept the slots; this one would outlive the pool.
            await worker.kill()
            raise SandboxUnavailable("the sandbox pool is closed")
        slot.worker = worker
        return worker

    def release(self, slot: _Slot, on_ready: Callable[[], None] | None = None) -> None:
        """Give the slot back; `on_ready` runs once it can take a job again (after any respawn)."""
        worker = slot.worker
        if not self.closed and worker is not None and worker.alive and worker.jobs < _MAX_JOBS_PER_WORKER:
            self.idle.put_nowait(slot)
            if on_ready is not None:
                on_ready()
            return
        if self.closed:
            if on_ready is not None:
                on_ready()
            return
        task = asyncio.create_task(self._refill(slot, on_ready))
        self._refills.add(task)
        task.add_done_callback(self._refills.discard)

    async def _refill(self, slot: _Slot, on_ready: Callable[[], None] | None) -> None:
        try:
            old, slot.worker = slot.worker, None
            if old is not None:
                await old.kill()
            try:
                await self.spawn_into(slot)
            except SandboxUnavailable:
                if not self.closed:
                    log.warning("could not respawn a sandbox worker; will retry on next use")
        finally:
            if self.closed:
                if slot.worker is not None:
                    worker, slot.worker = slot.worker, None
                    await worker.kill()
            else:
                self.idle.put_nowait(slot)
            if on_ready is not None:
                on_ready()

    async def discard(self, slot: _Slot) -> None:
        worker, slot.worker = slot.worker, None
        if worker is not None:
            await worker.kill()


class SandboxPool:
    """Run workers shared fairly between tenants, plus check workers that runs can never occupy."""

    def __init__(self, limits: SandboxLimits, *, fetcher: Fetcher | None = None) -> None:
        self.limits = limits
        self._fetcher = fetcher or Fetcher(limits)
        self._owns_fetcher = fetcher is None
        self._runs = _Lane("run", limits.workers, limits)
        self._checks = _Lane("check", limits.check_workers, limits)
        self._gate = FairGate(limits.workers, limits.runs_per_tenant, limits.max_queued_per_tenant)
        self._ids = itertools.count(1)
        self._started = False
        self._closed = False
        self._start_lock = asyncio.Lock()
        self._worker_limits = {
            "memory_bytes": limits.memory_bytes,
            "stack_bytes": limits.stack_bytes,
            "js": {
                "maxLogEntries": limits.max_log_entries,
                "maxLogBytes": limits.max_log_bytes,
                "maxFetches": limits.max_fetches,
                "maxRequestBytes": limits.max_response_bytes,
                "maxEvents": limits.max_events,
                "maxResultBytes": limits.max_result_bytes,
            },
        }

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        async with self._start_lock:
            if self._closed:
                raise SandboxUnavailable("the sandbox pool is closed")
            if self._started:
                return
            from .confine import seccomp_unavailable  # loads libseccomp: not before a pool is used

            reason = seccomp_unavailable()
            if reason is not None:
                log.warning("the polling sandbox runs without seccomp, its workers unfiltered (%s)", reason)
            await self._runs.start()
            try:
                await self._checks.start()
            except BaseException:
                await self._runs.close()
                raise
            self._started = True

    async def close(self) -> None:
        self._closed = True
        await self._runs.close()
        await self._checks.close()
        if self._owns_fetcher:
            await self._fetcher.aclose()

    async def __aenter__(self) -> SandboxPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _ready(self) -> None:
        if not self._started:
            await self.start()
        if self._closed:
            raise SandboxUnavailable("the sandbox pool is closed")

    # ----------------------------------------------------------------- jobs

    async def check_syntax(self, code: str) -> CodeError | None:
        await self._ready()
        slot, worker = await self._checks.acquire()
        try:
            run_id = next(self._ids)
            worker.jobs += 1
            deadline = time.monotonic() + self.limits.wall_time_s
            try:
                await worker.send({
                    "op": "check", "run": run_id, "code": code, "limits": self._worker_limits,
                    "budget_s": max(self.limits.wall_time_s - _COOPERATIVE_MARGIN_S, 0.01),
                })
                while True:
                    reply = await worker.recv(deadline - time.monotonic())
                    if reply.get("type") == "checked" and reply.get("run") == run_id:
                        break
            except TimeoutError:
                await self._checks.discard(slot)
                return CodeError(f"Syntax check exceeded the {format_seconds(self.limits.wall_time_s)} time limit")
            except (_WorkerGone, _TooDeep):
                await self._checks.discard(slot)
                if self._closed:
                    raise SandboxUnavailable("the sandbox pool is closed") from None
                return CodeError("The sandbox failed while checking the code")
            error = reply.get("error")
            if error is None:
                return None
            if not isinstance(error, dict):
                return CodeError("The sandbox failed while checking the code")
            return _code_error(error.get("message"), error.get("line"), error.get("column"))
        finally:
            self._checks.release(slot)

    async def run(
        self, code: str, *, inputs: dict, secrets: dict, last_poll_time: str | None, tenant: str = ""
    ) -> RunResult:
        """Run `code` once. `tenant` (a workspace) is what fair sharing counts runs against.

        The tenant's share is held until its worker can take a job again, so a run that had to
        be killed (and its worker replaced) costs its own tenant the replacement, not the others.
        """
        payload = {"inputs": inputs, "secrets": secrets, "lastPollTime": last_poll_time}
        # Fail on the caller's bug (non-JSON inputs) before taking a worker.
        json.dumps(payload)
        await self._ready()
        await self._gate.acquire(tenant, self.limits.wall_time_s + _ACQUIRE_GRACE_S)
        try:
            slot, worker = await self._runs.acquire()
        except BaseException:
            self._gate.release(tenant)
            raise
        try:
            return await self._run_on(slot, worker, code, payload)
        finally:
            self._runs.release(slot, lambda: self._gate.release(tenant))

    async def _run_on(self, slot: _Slot, worker: _Worker, code: str, payload: dict) -> RunResult:
        limits = self.limits
        run_id = next(self._ids)
        worker.jobs += 1
        started = time.monotonic()
        deadline = started + limits.wall_time_s
        budget = FetchBudget(deadline=deadline, max_fetches=limits.max_fetches, secret_values=tuple(v for v in (payload["secrets"] or {}).values() if isinstance(v, str) and len(v) >= 4))
        fetches: set[asyncio.Task] = set()
        requested = 0

        def elapsed_ms() -> float:
            return (time.monotonic() - started) * 1000.0

        request = {
            "op": "run", "run": run_id, "code": code, "limits": self._worker_limits,
            "budget_s": max(limits.wall_time_s - _COOPERATIVE_MARGIN_S, 0.01), "payload": payload,
        }
        try:
            try:
                await worker.send(request)
            except _WorkerGone:
                # The idle worker died since it was last used; not the code's fault.
                await self._runs.discard(slot)
                worker = await self._runs.spawn_into(slot)
                worker.jobs += 1
                await worker.send(request)
            while True:
                message = await worker.recv(deadline - time.monotonic())
                kind = message.get("type")
                if message.get("run") != run_id or kind not in ("fetch", "result"):
                    # The worker speaks for this run only; anything else means it is not ours any
                    # more, and reading on would let it keep the event loop busy.
                    raise _WorkerGone
                if kind == "fetch":
                    requested += 1
                    if requested > limits.max_fetches:
                        # Only a worker that no longer follows the protocol sends more: the code
                        # found a way around the prelude's own count. Nothing more is served.
                        await self._runs.discard(slot)
                        return RunResult(
                            ok=False,
                            error=CodeError(
                                f"fetch refused: more than {limits.max_fetches} fetches in one run"
                            ),
                            duration_ms=elapsed_ms(),
                        )
                    task = asyncio.create_task(self._serve_fetch(worker, run_id, message, budget))
                    fetches.add(task)
                    task.add_done_callback(fetches.discard)
                elif kind == "result":
                    outcome = message.get("outcome")
                    break
        except _TooDeep:
            return RunResult(
                ok=False, error=CodeError("Result is nested too deeply to be read"), duration_ms=elapsed_ms()
            )
        except TimeoutError:
            await self._runs.discard(slot)
            return RunResult(
                ok=False,
                error=CodeError(f"Polling code exceeded the {format_seconds(limits.wall_time_s)} time limit"),
                duration_ms=elapsed_ms(),
            )
        except _WorkerGone:
            returncode = worker.proc.returncode
            await self._runs.discard(slot)
            if self._closed:
                raise SandboxUnavailable("the sandbox pool is closed") from None
            return RunResult(
                ok=False,
                error=CodeError(
                    "Polling code crashed the sandbox"
                    + (f" (worker exit status {returncode})" if returncode is not None else "")
                    + f"; it may have exceeded the {format_bytes(limits.memory_bytes)} memory limit"
                ),
                duration_ms=elapsed_ms(),
            )
        finally:
            for task in list(fetches):
                task.cancel()
            if fetches:
                await asyncio.gather(*fetches, return_exceptions=True)
        return self._to_result(outcome, elapsed_ms())

    async def _serve_fetch(self, worker: _Worker, run_id: int, message: dict, budget: FetchBudget) -> None:
        try:
            response = await self._fetcher.fetch(message.get("request"), budget)
            result = {"ok": True, "response": response}
        except FetchError as exc:
            result = {"ok": False, "error": str(exc)}
        except Exception:
            log.exception("sandbox fetch failed unexpectedly")
            result = {"ok": False, "error": "fetch failed: internal error"}
        try:
            await worker.send({"op": "fetch_result", "run": run_id, "id": message.get("id"), "result": result})
        except _WorkerGone:
            pass

    def _to_result(self, outcome: object, duration_ms: float) -> RunResult:
        limits = self.limits
        if not isinstance(outcome, dict):
            return RunResult(ok=False, error=CodeError("The sandbox returned a malformed result"), duration_ms=duration_ms)
        logs = cap_logs(outcome.get("logs"), limits)
        if outcome.get("ok") is True:
            try:
                events = validate_events(outcome.get("value"), limits)
            except InvalidResult as exc:
                return RunResult(ok=False, logs=logs, error=CodeError(str(exc)), duration_ms=duration_ms)
            return RunResult(ok=True, events=events, logs=logs, duration_ms=duration_ms)
        error = outcome.get("error")
        if not isinstance(error, dict):
            error = {}
        kind = error.get("kind")
        detail = error.get("message") if isinstance(error.get("message"), str) else ""
        line, column = error.get("line"), error.get("column")
        if kind == "timeout":
            message = f"Polling code exceeded the {format_seconds(limits.wall_time_s)} time limit"
            if detail and not detail.startswith("InternalError"):
                message += f" ({detail})"
        elif kind == "memory":
            message = f"Polling code exceeded the {format_bytes(limits.memory_bytes)} memory limit"
        elif kind == "never_settled":
            message = (
                "Polling code never finished: it is waiting for a promise that nothing will settle "
                "(no fetch or timer is pending)"
            )
            line = column = None
        elif kind in ("error", "syntax", "result"):
            message = detail or "Polling code failed"
        else:
            message = "The sandbox failed to run the polling code" + (f" ({detail})" if detail else "")
            line = column = None
        return RunResult(ok=False, logs=logs, error=_code_error(message, line, column), duration_ms=duration_ms)


def _code_error(message: object, line: object, column: object) -> CodeError:
    def position(value: object) -> int | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if not math.isfinite(value) or value < 1:
            return None
        return int(value)

    text = message if isinstance(message, str) and message else "Polling code failed"
    return CodeError(message=text[:4096], line=position(line), column=position(column))
