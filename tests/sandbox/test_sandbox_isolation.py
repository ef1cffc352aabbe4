"""User code cannot reach the host, and a syntax check never executes anything."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

ALLOWED_GLOBALS = {
    "inputs", "secrets", "lastPollTime", "fetch", "console",
    "URL", "URLSearchParams", "Headers", "setTimeout", "clearTimeout",
}
# Built into QuickJS itself (ECMAScript plus a few web-standard ones).
STANDARD_GLOBALS = {
    "Object", "Function", "Error", "EvalError", "RangeError", "ReferenceError", "SyntaxError",
    "TypeError", "URIError", "InternalError", "AggregateError", "SuppressedError", "Iterator",
    "Array", "parseInt", "parseFloat", "isNaN", "isFinite", "queueMicrotask", "decodeURI",
    "decodeURIComponent", "encodeURI", "encodeURIComponent", "escape", "unescape", "Infinity",
    "NaN", "undefined", "eval", "Number", "Boolean", "String", "Math", "Reflect", "Symbol",
    "DisposableStack", "globalThis", "BigInt", "Date", "RegExp", "JSON", "Proxy", "Map", "Set",
    "WeakMap", "WeakSet", "ArrayBuffer", "SharedArrayBuffer", "Uint8ClampedArray", "Int8Array",
    "Uint8Array", "Int16Array", "Uint16Array", "Int32Array", "Uint32Array", "BigInt64Array",
    "BigUint64Array", "Float16Array", "Float32Array", "Float64Array", "DataView", "Atomics",
    "Promise", "AsyncDisposableStack", "WeakRef", "FinalizationRegistry", "DOMException", "btoa",
    "atob", "performance",
}
HOST_NAMES = [
    "require", "process", "std", "os", "module", "exports", "Deno", "Bun", "print", "scriptArgs",
    "__python", "py", "control", "PRELUDE", "_quickjs", "importScripts", "XMLHttpRequest", "WebSocket",
]


async def test_globals_are_exactly_the_allowed_ones(run_code):
    result = await run_code(
        "return [{id: 1, own: Object.getOwnPropertyNames(globalThis),"
        " symbols: Object.getOwnPropertySymbols(globalThis).map(String),"
        " viaFunction: Object.getOwnPropertyNames(new Function('return this')())}]"
    )
    assert result.ok, result.error
    own = set(result.events[0]["own"])
    assert own - STANDARD_GLOBALS == ALLOWED_GLOBALS
    assert set(result.events[0]["viaFunction"]) == own
    assert result.events[0]["symbols"] in ([], ["Symbol(Symbol.toStringTag)"])


@pytest.mark.parametrize("name", HOST_NAMES)
async def test_host_names_are_absent(run_code, name):
    result = await run_code(f"return [{{id: 1, t: typeof {name}, inGlobal: '{name}' in globalThis}}]")
    assert result.ok, result.error
    assert result.events == [{"id": 1, "t": "undefined", "inGlobal": False}]


async def test_shims_are_plain_javascript_without_host_internals(run_code):
    result = await run_code(
        """
        const probes = {};
        for (const [name, f] of Object.entries({fetch, setTimeout, clearTimeout, log: console.log, URL, Headers})) {
          probes[name] = {
            own: Object.getOwnPropertyNames(f).sort(),
            native: Function.prototype.toString.call(f).includes('[native code]'),
          };
        }
        let caller;
        try { caller = String(fetch.caller); } catch (e) { caller = e.name; }
        let dynamicImport;
        try { await import('os'); dynamicImport = 'loaded'; } catch (e) { dynamicImport = e.name; }
        return [{id: 1, probes, caller, dynamicImport}];
        """
    )
    assert result.ok, result.error
    event = result.events[0]
    for name, probe in event["probes"].items():
        assert not probe["native"], name
        assert set(probe["own"]) <= {"length", "name", "prototype", "canParse", "parse"}, name
    assert event["caller"] == "TypeError"
    assert event["dynamicImport"] in ("TypeError", "ReferenceError", "SyntaxError", "Error")


async def test_fetch_shim_only_queues_requests_for_the_parent(run_code):
    # Replacing builtins the shims use only breaks the script itself.
    result = await run_code(
        """
        JSON.stringify = () => { throw new Error('hijacked'); };
        Promise.prototype.then = function () { throw new Error('hijacked'); };
        Array.prototype.push = function () { throw new Error('hijacked'); };
        return [{id: 1}];
        """
    )
    assert result.ok, result.error
    assert result.events == [{"id": 1}]


async def test_worker_process_has_empty_environment_and_no_extra_files(pool):
    pids = [slot.worker.proc.pid for slot in pool._runs.slots]
    for pid in pids:
        assert Path(f"/proc/{pid}/environ").read_bytes() == b""
        fds = os.listdir(f"/proc/{pid}/fd")
        # stdin, stdout (now /dev/null), stderr (/dev/null), the protocol's copy of stdout, and
        # /proc/self/status and clear_refs (opened before seccomp); test_sandbox_confinement names them.
        assert len(fds) <= 6, fds
        assert Path(f"/proc/{pid}/cwd").resolve() == Path("/")


async def test_check_syntax_accepts_valid_code(pool):
    assert await pool.check_syntax("const r = await fetch('https://x.example');\nreturn [];") is None
    assert await pool.check_syntax("") is None


async def test_check_syntax_reports_position_in_user_code(pool):
    error = await pool.check_syntax("const a = 1;\nconst b = ;\n")
    assert error is not None and error.message.startswith("SyntaxError")
    assert (error.line, error.column) == (2, 11)
    unterminated = await pool.check_syntax("if (x) {\n  foo();\n")
    assert unterminated is not None and unterminated.line is not None and unterminated.line <= 3


async def test_check_syntax_never_executes_code(dev_pool, fake_api):
    hits_before = fake_api.hits.get("/hit-check", 0)
    started = time.monotonic()
    assert await dev_pool.check_syntax("while (true) {}") is None
    assert await dev_pool.check_syntax(f"await fetch('{fake_api.url('/hit-check')}');\nglobalThis.leak = 1;") is None
    assert time.monotonic() - started < 1.0
    assert fake_api.hits.get("/hit-check", 0) == hits_before


@pytest.mark.parametrize(
    "escape",
    [
        "}); fetch('URL'); (async function(){",
        "} fetch('URL'); async function again(){",
        "}\nvar leaked = fetch('URL');\nfunction tail(){",
        "}}}}); fetch('URL'); ((((async function(){{{{",
    ],
)
async def test_wrapper_escape_is_rejected_and_never_runs(dev_pool, fake_api, escape):
    code = escape.replace("URL", fake_api.url("/hit-escape"))
    hits_before = fake_api.hits.get("/hit-escape", 0)
    error = await dev_pool.check_syntax(code)
    assert error is not None and error.message.startswith("SyntaxError")
    result = await dev_pool.run(code, inputs={}, secrets={}, last_poll_time=None)
    assert not result.ok and result.error.message.startswith("SyntaxError")
    assert fake_api.hits.get("/hit-escape", 0) == hits_before


async def test_wrapper_escape_position_points_at_the_closing_brace(pool):
    error = await pool.check_syntax("const a = 1;\n  } globalThis.x = 1; async function y(){")
    assert error is not None
    assert "closes the polling function early" in error.message
    assert (error.line, error.column) == (2, 3)
