"""The sandbox pool: run workers shared fairly between tenants, and check workers of their own.

Workers are processes, so that the API never runs QuickJS: a wedged engine costs one worker,
SIGKILLed at the wall-clock deadline and replaced in the background.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time

from .channel import TooDeep, Worker, WorkerGone
from .contracts import CodeError, RunResult, SandboxLimits, SandboxUnavailable, code_error, format_bytes, format_seconds
from .fairness import FairGate
from .fetcher import FetchBudget, Fetcher, FetchError
from .lanes import ACQUIRE_GRACE_S, Lane, Slot
from .results import InvalidResult, cap_logs, validate_events

log = logging.getLogger(__name__)

# The worker's own CPU-time limit fires this much before the parent's kill, so that usually
# the run ends cooperatively, with its logs, and the worker survives.
_COOPERATIVE_MARGIN_S = 0.1


class SandboxPool:
    """Run workers shared fairly between tenants, plus check workers that runs can never occupy."""

    def __init__(self, limits: SandboxLimits, *, fetcher: Fetcher | None = None) -> None:
        self.limits = limits
        self._fetcher = fetcher or Fetcher(limits)
        self._owns_fetcher = fetcher is None
        self._runs = Lane("run", limits.workers, limits)
        self._checks = Lane("check", limits.check_workers, limits)
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
            except (WorkerGone, TooDeep):
                await self._checks.discard(slot)
                if self._closed:
                    raise SandboxUnavailable("the sandbox pool is closed") from None
                return CodeError("The sandbox failed while checking the code")
            error = reply.get("error")
            if error is None:
                return None
            if not isinstance(error, dict):
                return CodeError("The sandbox failed while checking the code")
            return code_error(error.get("message"), error.get("line"), error.get("column"))
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
        await self._gate.acquire(tenant, self.limits.wall_time_s + ACQUIRE_GRACE_S)
        try:
            slot, worker = await self._runs.acquire()
        except BaseException:
            self._gate.release(tenant)
            raise
        try:
            return await self._run_on(slot, worker, code, payload)
        finally:
            self._runs.release(slot, lambda: self._gate.release(tenant))

    async def _run_on(self, slot: Slot, worker: Worker, code: str, payload: dict) -> RunResult:
        limits = self.limits
        run_id = next(self._ids)
        worker.jobs += 1
        started = time.monotonic()
        deadline = started + limits.wall_time_s
        budget = FetchBudget(
            deadline=deadline,
            max_fetches=limits.max_fetches,
            secret_values=tuple(v for v in (payload["secrets"] or {}).values() if isinstance(v, str) and len(v) >= 4),
        )
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
            except WorkerGone:
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
                    raise WorkerGone
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
        except TooDeep:
            return RunResult(
                ok=False, error=CodeError("Result is nested too deeply to be read", kind="invalid_output"),
                duration_ms=elapsed_ms(),
            )
        except TimeoutError:
            await self._runs.discard(slot)
            return RunResult(
                ok=False,
                error=CodeError(f"Polling code exceeded the {format_seconds(limits.wall_time_s)} time limit", kind="timeout"),
                duration_ms=elapsed_ms(),
            )
        except WorkerGone:
            returncode = worker.proc.returncode
            await self._runs.discard(slot)
            if self._closed:
                raise SandboxUnavailable("the sandbox pool is closed") from None
            return RunResult(
                ok=False,
                error=CodeError(
                    "Polling code crashed the sandbox"
                    + (f" (worker exit status {returncode})" if returncode is not None else "")
                    + f"; it may have exceeded the {format_bytes(limits.memory_bytes)} memory limit",
                    kind="memory_limit",
                ),
                duration_ms=elapsed_ms(),
            )
        finally:
            for task in list(fetches):
                task.cancel()
            if fetches:
                await asyncio.gather(*fetches, return_exceptions=True)
        return self._to_result(outcome, elapsed_ms())

    async def _serve_fetch(self, worker: Worker, run_id: int, message: dict, budget: FetchBudget) -> None:
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
        except WorkerGone:
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
                return RunResult(ok=False, logs=logs, error=CodeError(str(exc), kind="invalid_output"), duration_ms=duration_ms)
            return RunResult(ok=True, events=events, logs=logs, duration_ms=duration_ms)
        error = outcome.get("error")
        if not isinstance(error, dict):
            error = {}
        kind = error.get("kind")
        failure = {"timeout": "timeout", "memory": "memory_limit", "result": "invalid_output"}.get(str(kind), "error")
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
        return RunResult(ok=False, logs=logs, error=code_error(message, line, column, failure), duration_ms=duration_ms)
