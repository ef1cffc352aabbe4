"""Sandbox worker process: runs users' polling code in QuickJS, one job at a time.

Started by channel.py as ``python -I -B <this file> <config json>`` with an empty environment; it
speaks JSON lines on stdin/stdout (protocol.py). Every job gets a brand-new QuickJS runtime with
memory, stack and CPU-time limits; the parent also kills this process at the wall-clock deadline,
so nothing here has to be trusted to stop on its own.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))

# Not typing.TYPE_CHECKING: the worker imports nothing it does not use. mypy takes any name
# TYPE_CHECKING as true, so it checks the package branch below, not the run-by-path one.
TYPE_CHECKING = False

if TYPE_CHECKING or __package__:
    from .js_prelude import LOG_TRUNCATED, PRELUDE_FILE, WEB_SHIMS_FILE, assemble
    from .peak_memory import PeakMemory
    from .protocol import BrokenStep, Channel, ParentGone, read_step
    from .syntax import PAD, check_syntax, kind_of, new_context, position_from_stack, split_exception
else:
    # -I leaves the script's directory off sys.path; append (not prepend) so
    # nothing in this directory can shadow a standard-library module.
    sys.path.append(_HERE)
    from js_prelude import LOG_TRUNCATED, PRELUDE_FILE, WEB_SHIMS_FILE, assemble
    from peak_memory import PeakMemory
    from protocol import BrokenStep, Channel, ParentGone, read_step
    from syntax import PAD, check_syntax, kind_of, new_context, position_from_stack, split_exception


def _read_js(name: str) -> str:
    # Beside this file rather than through importlib.resources: the package may
    # not be importable here, and this runs at import, before confine.apply
    # forbids opening anything.
    with open(os.path.join(_HERE, "js", name), encoding="utf-8") as f:
        return f.read()


PRELUDE = assemble(_read_js(PRELUDE_FILE), _read_js(WEB_SHIMS_FILE))

import _quickjs  # noqa: E402  (after the prelude is read; see syntax.py for why the C extension)

# A run whose budget is spent still gets this much CPU to hand back its logs.
_POSTMORTEM_S = 0.05


_PEAK = PeakMemory()


class TimeUp(Exception):
    pass


def _harden(config: dict) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # Defence in depth behind QuickJS's own allocator limit: should anything
    # allocate outside its accounting, the process dies instead of the host.
    address_space = int(config.get("address_space_bytes", 0))
    if address_space > 0:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    resource.setrlimit(resource.RLIMIT_NOFILE, (16, 16))


class SpareContext:
    """One context with the prelude already evaluated, made while idle.

    Evaluating the prelude is most of a trivial run's cost, and it does not
    depend on the job, so it is done between jobs instead of on the request
    path. The context is untouched by any user code until handed out, and is
    handed out once.
    """

    def __init__(self) -> None:
        self._item: tuple[tuple[int, int], _quickjs.Context, object] | None = None

    @staticmethod
    def _key(limits: dict) -> tuple[int, int]:
        return int(limits["memory_bytes"]), int(limits["stack_bytes"])

    def prepare(self, limits: dict) -> None:
        self._item = None
        try:
            ctx = new_context(limits)
            ctx.set_time_limit(1.0)
            control = ctx.eval(PRELUDE)
        except Exception:
            return
        self._item = (self._key(limits), ctx, control)

    def take(self, limits: dict) -> tuple[_quickjs.Context, object] | None:
        item, self._item = self._item, None
        if item is None or item[0] != self._key(limits):
            return None
        return item[1], item[2]


_SPARE = SpareContext()


class Run:
    def __init__(self, chan: Channel, message: dict) -> None:
        self.chan = chan
        self.run_id = message["run"]
        self.code = message["code"]
        self.limits = message["limits"]
        self.payload = message["payload"]
        self.deadline = time.monotonic() + float(message["budget_s"])
        self.ctx: _quickjs.Context | None = None
        self.control: _quickjs.Object | None = None

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def enter(self, fn, *args):
        """Call into JS with whatever is left of the run's budget as its CPU limit."""
        remaining = self.remaining()
        if remaining <= 0:
            raise TimeUp
        self.ctx.set_time_limit(remaining)
        return fn(*args)

    def execute(self) -> dict | str:
        syntax = check_syntax(self.code, self.limits, self.deadline)
        if syntax is not None:
            return {"ok": False, "error": dict(syntax, kind="syntax"), "logs": []}
        _PEAK.before_run(int(self.limits["memory_bytes"]))
        try:
            spare = _SPARE.take(self.limits)
            if spare is not None:
                self.ctx, self.control = spare
            else:
                self.ctx = new_context(self.limits)
                self.control = self.enter(self.ctx.eval, PRELUDE)
            self.enter(self.control, "init", json.dumps({
                "inputs": self.payload.get("inputs"),
                "secrets": self.payload.get("secrets"),
                "lastPollTime": self.payload.get("lastPollTime"),
                "limits": self.limits["js"],
                "logTruncated": LOG_TRUNCATED,
            }))
            function = self.enter(self.ctx.eval, PAD + "(async function(){\n" + self.code + "\n})")
            self.enter(self.control, "start", function)
            del function
            settled = self.drive()
            if not settled:
                return self.failure("never_settled", "")
            final = self.enter(self.control, "finish")
        except TimeUp as exc:
            return self.failure("timeout", str(exc))
        except BrokenStep:
            return self.failure("internal", "the code interfered with the sandbox's own bookkeeping")
        except _quickjs.JSException as exc:
            message, stack = split_exception(exc)
            return self.failure(kind_of(message), message, stack)
        if not isinstance(final, str) or "\n" in final:
            return self.failure("internal", "the result could not be read")
        if final.startswith('{"ok":true,'):
            # Already JSON from the prelude; pass it through without a round trip.
            return final
        outcome = json.loads(final)
        error = outcome.get("error") or {}
        kind = kind_of(str(error.get("message", ""))) if error.get("kind") == "error" else error.get("kind")
        if kind == "error" and error.get("message") == "Uncaught null" and self.ran_out_of_memory():
            kind = "memory"
        line, column = position_from_stack(str(error.get("stack") or ""), self.code)
        outcome["error"] = {"kind": kind, "message": error.get("message"), "line": line, "column": column}
        return outcome

    def ran_out_of_memory(self) -> bool:
        growth = _PEAK.growth_bytes()
        return growth is not None and growth >= 0.75 * int(self.limits["memory_bytes"])

    def drive(self) -> bool:
        """Run jobs, fetches and timers until the user's promise settles.

        Returns False when nothing can ever settle it (no job, fetch or timer
        left), which is reported at once instead of waiting for the deadline.
        """
        ctx = self.ctx
        assert ctx is not None  # execute() made it before driving
        inflight = 0
        while True:
            while self.enter(ctx.execute_pending_job):
                pass
            done, timer, requests = read_step(self.enter(self.control, "step"))
            if done:
                return True
            for request in requests:
                self.chan.send({"type": "fetch", "run": self.run_id, "id": request["id"], "request": request})
                inflight += 1
            if inflight:
                reply = self.wait_fetch()
                inflight -= 1
                self.enter(self.control, "fetched", reply["id"], json.dumps(reply["result"]))
                continue
            if timer is not None:
                wait = timer / 1000.0
                if wait >= self.remaining():
                    raise TimeUp(f"a setTimeout of {timer:.0f} ms would fire after the deadline")
                if wait > 0:
                    time.sleep(wait)
                self.enter(self.control, "fire")
                continue
            return False

    def wait_fetch(self) -> dict:
        while True:
            message = self.chan.recv()
            if message is None:
                raise ParentGone
            if (
                message.get("op") == "fetch_result"
                and message.get("run") == self.run_id
                and isinstance(message.get("id"), int)
                and isinstance(message.get("result"), dict)
            ):
                return message

    def failure(self, kind: str, message: str, stack: str = "") -> dict:
        line, column = position_from_stack(stack, self.code) if stack else (None, None)
        return {
            "ok": False,
            "error": {"kind": kind, "message": message, "line": line, "column": column},
            "logs": self.salvage_logs(),
        }

    def salvage_logs(self) -> list:
        if self.ctx is None or self.control is None:
            return []
        try:
            self.ctx.set_time_limit(_POSTMORTEM_S)
            text = self.control("logs")
            logs = json.loads(text) if isinstance(text, str) else []
            return logs if isinstance(logs, list) else []
        except Exception:
            return []


def _serve(chan: Channel) -> None:
    while True:
        message = chan.recv()
        if message is None:
            return
        op = message.get("op")
        if op == "check":
            try:
                deadline = time.monotonic() + float(message["budget_s"])
                error = check_syntax(str(message["code"]), message["limits"], deadline)
            except _quickjs.JSException as exc:
                error = {"message": split_exception(exc)[0], "line": None, "column": None}
            except Exception as exc:
                error = {"message": f"Polling code could not be checked ({type(exc).__name__})", "line": None, "column": None}
            chan.send({"type": "checked", "run": message.get("run"), "error": error})
        elif op == "run":
            run_id = message.get("run")
            if not isinstance(run_id, int):
                run_id = 0
            run = None
            try:
                run = Run(chan, message)
                outcome = run.execute()
            except ParentGone:
                return
            except Exception as exc:  # one bad job must not take the worker down
                outcome = {"ok": False, "error": {"kind": "internal", "message": type(exc).__name__}, "logs": []}
            # Drop every reference into the runtime so it is freed before the next job.
            run = None
            if isinstance(outcome, str):
                chan.send_raw(f'{{"type":"result","run":{run_id:d},"outcome":{outcome}}}')
            else:
                chan.send({"type": "result", "run": run_id, "outcome": outcome})
            if isinstance(message.get("limits"), dict):
                _SPARE.prepare(message["limits"])
        # Anything else (e.g. a fetch reply that arrived after its run ended) is stale.


def main() -> None:
    if TYPE_CHECKING or __package__:
        from . import confine
    else:
        import confine  # through the sys.path entry added for js_prelude
    config = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    # First, so that no descriptor the API process leaked to us gets reused or kept.
    confine.close_inherited_fds()
    chan = Channel()
    _PEAK.open()
    _harden(config)
    # Last: from here on nothing can be opened, and root (if we had it) is gone.
    confine.apply(int(config.get("worker_uid", 65534)), int(config.get("worker_gid", 65534)))
    chan.send({"type": "ready", "pid": os.getpid()})
    if "memory_bytes" in config and "stack_bytes" in config:
        _SPARE.prepare(config)
    try:
        _serve(chan)
    except ParentGone:
        pass


if __name__ == "__main__":
    main()
