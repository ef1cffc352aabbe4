"""Sandbox worker process: runs users' polling code in QuickJS, one job at a time.

Started by pool.py as ``python -I -B <this file> <config json>`` with an empty
environment. It speaks newline-delimited JSON: requests on stdin, replies on
stdout. fd 1 is re-pointed at /dev/null once the protocol stream has its own
copy, so nothing but protocol messages can ever reach the parent.

Every job gets a brand-new QuickJS runtime with memory, stack and (CPU) time
limits; the parent additionally enforces the wall-clock deadline by killing
this process, so nothing here has to be trusted to stop on its own.
"""

from __future__ import annotations

import json
import os
import re
import resource
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))

if __package__:
    from .js_prelude import LOG_TRUNCATED, PRELUDE_FILE, WEB_SHIMS_FILE, assemble
else:
    # -I leaves the script's directory off sys.path; append (not prepend) so
    # nothing in this directory can shadow a standard-library module.
    sys.path.append(_HERE)
    from js_prelude import LOG_TRUNCATED, PRELUDE_FILE, WEB_SHIMS_FILE, assemble


def _read_js(name: str) -> str:
    # Beside this file rather than through importlib.resources: the package may
    # not be importable here, and this runs at import, before confine.apply
    # forbids opening anything.
    with open(os.path.join(_HERE, "js", name), encoding="utf-8") as f:
        return f.read()


PRELUDE = assemble(_read_js(PRELUDE_FILE), _read_js(WEB_SHIMS_FILE))

# The C extension directly: importing the ``quickjs`` wrapper package starts a
# thread pool we do not need (and clock()-based limits count every thread).
import _quickjs

# User code is compiled this many lines into the script, so that stack frames
# of the prelude or of strings the user eval()s (both numbered from line 1)
# can never be mistaken for user lines.
PAD_LINES = 10_000
HEADER_LINES = PAD_LINES + 1
_PAD = "\n" * PAD_LINES
_FRAME = re.compile(r"<input>:(\d+):(\d+)")

# A run whose budget is spent still gets this much CPU to hand back its logs.
_POSTMORTEM_S = 0.05


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
        self._trim = None
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


_PEAK = PeakMemory()


class TimeUp(Exception):
    pass


class ParentGone(Exception):
    pass


class Channel:
    def __init__(self) -> None:
        self._in = sys.stdin.buffer
        self._out = os.fdopen(os.dup(1), "wb")
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)

    def send_raw(self, line: str) -> None:
        try:
            self._out.write(line.encode("utf-8", "surrogatepass") + b"\n")
            self._out.flush()
        except (BrokenPipeError, OSError) as exc:
            raise ParentGone from exc

    def send(self, message: dict) -> None:
        self.send_raw(json.dumps(message, ensure_ascii=False, separators=(",", ":")))

    def recv(self) -> dict | None:
        while True:
            line = self._in.readline()
            if not line:
                return None
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict):
                return message


def _harden(config: dict) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # Defence in depth behind QuickJS's own allocator limit: should anything
    # allocate outside its accounting, the process dies instead of the host.
    address_space = int(config.get("address_space_bytes", 0))
    if address_space > 0:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    resource.setrlimit(resource.RLIMIT_NOFILE, (16, 16))


def _user_position(line: int, column: int, code: str) -> tuple[int | None, int | None]:
    user_line = line - HEADER_LINES
    if user_line < 1:
        return None, None
    lines = code.split("\n")
    if user_line > len(lines):
        # Errors reported at the wrapper's closing brace (e.g. a missing '}')
        # belong at the end of the user's code.
        return len(lines), len(lines[-1]) + 1
    return user_line, column


def _position_from_stack(stack: str, code: str) -> tuple[int | None, int | None]:
    for match in _FRAME.finditer(stack[:16384]):
        line, column = int(match.group(1)), int(match.group(2))
        if line > HEADER_LINES:
            return _user_position(line, column, code)
    return None, None


def _split_exception(exc: Exception) -> tuple[str, str]:
    text = str(exc)
    first, _, rest = text.partition("\n")
    return first.strip(), rest


def _kind_of(message: str) -> str:
    if message.startswith("InternalError: interrupted"):
        return "timeout"
    if message.startswith("InternalError: out of memory") or "out of memory" in message[:80]:
        return "memory"
    return "error"


def _new_context(limits: dict) -> _quickjs.Context:
    ctx = _quickjs.Context()
    ctx.set_memory_limit(int(limits["memory_bytes"]))
    ctx.set_max_stack_size(int(limits["stack_bytes"]))
    return ctx


def check_syntax(code: str, limits: dict, deadline: float) -> dict | None:
    """Compile ``code`` as an async function body without running any of it.

    The script starts with ``throw null;`` so evaluation stops before its
    first statement; the function *declaration* after it is still
    instantiated (declarations are hoisted), which lets us compare its source
    text with what we wrapped. If the user's text closed our function early
    (``}); evil(); (async function(){``) the hoisted function's source is
    shorter than the wrapper, and the code is rejected. This runs in a
    throwaway context, so even hoisted declarations from such an escape never
    reach a context that executes anything.
    """
    if "\x00" in code:
        index = code.index("\x00")
        return {
            "message": "SyntaxError: polling code must not contain NUL characters",
            "line": code.count("\n", 0, index) + 1,
            "column": index - (code.rfind("\n", 0, index) + 1) + 1,
        }
    ctx = _new_context(limits)
    ctx.set_time_limit(max(deadline - time.monotonic(), 0.001))
    name = "__syntax_check_" + os.urandom(12).hex()
    head = "async function " + name + "(){\n"
    try:
        ctx.eval(_PAD + "throw null; " + head + code + "\n}")
    except _quickjs.JSException as exc:
        message, stack = _split_exception(exc)
        if message != "null":
            if _kind_of(message) == "memory":
                return {"message": "Polling code is too large to compile", "line": None, "column": None}
            match = _FRAME.search(stack)
            line, column = (None, None)
            if match:
                line, column = _user_position(int(match.group(1)), int(match.group(2)), code)
            if message.endswith(": ''"):
                message = "SyntaxError: unexpected end of code (is a closing '}', ')' or ']' missing?)"
            return {"message": message, "line": line, "column": column}
    else:
        return {"message": "Polling code could not be checked", "line": None, "column": None}
    source = ctx.eval(name + ".toString()")
    if source != head + code + "\n}":
        closed_at = len(source) - len(head) - 1 if isinstance(source, str) else 0
        closed_at = min(max(closed_at, 0), len(code))
        return {
            "message": "SyntaxError: unexpected '}': the code closes the polling function early",
            "line": code.count("\n", 0, closed_at) + 1,
            "column": closed_at - (code.rfind("\n", 0, closed_at) + 1) + 1,
        }
    return None


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
            ctx = _new_context(limits)
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


class BrokenStep(Exception):
    """The prelude's step report is not what the prelude writes: the code tampered with it."""


_REQUEST_FIELDS = {"id": int, "url": str, "method": str, "redirect": str}


def _read_step(text: object) -> tuple[bool, float | None, list[dict]]:
    """Parse the prelude's step report into plain values, rebuilding every request field by field.

    Only what passes these checks crosses to the parent, so nothing the code can reach in its
    context (toJSON, prototypes, getters) decides what the parent is sent; the parent still
    counts the requests itself.
    """
    try:
        status = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        status = None
    if not isinstance(status, dict) or not isinstance(status.get("done"), bool):
        raise BrokenStep
    timer = status.get("timer")
    if timer is not None and (isinstance(timer, bool) or not isinstance(timer, (int, float))):
        raise BrokenStep
    fetches = status.get("fetches")
    if not isinstance(fetches, list):
        raise BrokenStep
    requests = []
    for item in fetches:
        if not isinstance(item, dict):
            raise BrokenStep
        request = {}
        for name, kind in _REQUEST_FIELDS.items():
            value = item.get(name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise BrokenStep
            request[name] = value
        headers = item.get("headers")
        body = item.get("body")
        if not isinstance(headers, list) or not (body is None or isinstance(body, str)):
            raise BrokenStep
        if not all(isinstance(h, list) and len(h) == 2 and all(isinstance(x, str) for x in h) for h in headers):
            raise BrokenStep
        request["headers"] = [[name, value] for name, value in headers]
        request["body"] = body
        requests.append(request)
    return status["done"], None if timer is None else float(timer), requests


class Run:
    def __init__(self, chan: Channel, message: dict) -> None:
        self.chan = chan
        self.run_id = message["run"]
        self.code = message["code"]
        self.limits = message["limits"]
        self.payload = message["payload"]
        self.deadline = time.monotonic() + float(message["budget_s"])
        self.ctx: _quickjs.Context | None = None
        self.control = None

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
                self.ctx = _new_context(self.limits)
                self.control = self.enter(self.ctx.eval, PRELUDE)
            self.enter(self.control, "init", json.dumps({
                "inputs": self.payload.get("inputs"),
                "secrets": self.payload.get("secrets"),
                "lastPollTime": self.payload.get("lastPollTime"),
                "limits": self.limits["js"],
                "logTruncated": LOG_TRUNCATED,
            }))
            function = self.enter(self.ctx.eval, _PAD + "(async function(){\n" + self.code + "\n})")
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
            message, stack = _split_exception(exc)
            return self.failure(_kind_of(message), message, stack)
        if not isinstance(final, str) or "\n" in final:
            return self.failure("internal", "the result could not be read")
        if final.startswith('{"ok":true,'):
            # Already JSON from the prelude; pass it through without a round trip.
            return final
        outcome = json.loads(final)
        error = outcome.get("error") or {}
        kind = _kind_of(str(error.get("message", ""))) if error.get("kind") == "error" else error.get("kind")
        if kind == "error" and error.get("message") == "Uncaught null" and self.ran_out_of_memory():
            kind = "memory"
        line, column = _position_from_stack(str(error.get("stack") or ""), self.code)
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
        inflight = 0
        while True:
            while self.enter(self.ctx.execute_pending_job):
                pass
            done, timer, requests = _read_step(self.enter(self.control, "step"))
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
        line, column = _position_from_stack(stack, self.code) if stack else (None, None)
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
                error = {"message": _split_exception(exc)[0], "line": None, "column": None}
            except Exception as exc:
                error = {"message": "Polling code could not be checked (%s)" % type(exc).__name__, "line": None, "column": None}
            chan.send({"type": "checked", "run": message.get("run"), "error": error})
        elif op == "run":
            run_id = message.get("run") if isinstance(message.get("run"), int) else 0
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
                chan.send_raw('{"type":"result","run":%d,"outcome":%s}' % (run_id, outcome))
            else:
                chan.send({"type": "result", "run": run_id, "outcome": outcome})
            if isinstance(message.get("limits"), dict):
                _SPARE.prepare(message["limits"])
        # Anything else (e.g. a fetch reply that arrived after its run ended) is stale.


def main() -> None:
    if __package__:
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
