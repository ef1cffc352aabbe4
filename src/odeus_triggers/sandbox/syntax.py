"""Compiling users' code in QuickJS, and mapping engine positions back to lines of their code
(loaded by path by worker.py; imports nothing of the package)."""

from __future__ import annotations

import os
import re
import time

# The C extension directly: importing the ``quickjs`` wrapper package starts a
# thread pool we do not need (and clock()-based limits count every thread).
import _quickjs

# User code is compiled this many lines into the script, so that stack frames
# of the prelude or of strings the user eval()s (both numbered from line 1)
# can never be mistaken for user lines.
PAD_LINES = 10_000
HEADER_LINES = PAD_LINES + 1
PAD = "\n" * PAD_LINES
FRAME = re.compile(r"<input>:(\d+):(\d+)")


def user_position(line: int, column: int, code: str) -> tuple[int | None, int | None]:
    user_line = line - HEADER_LINES
    if user_line < 1:
        return None, None
    lines = code.split("\n")
    if user_line > len(lines):
        # Errors reported at the wrapper's closing brace (e.g. a missing '}')
        # belong at the end of the user's code.
        return len(lines), len(lines[-1]) + 1
    return user_line, column


def position_from_stack(stack: str, code: str) -> tuple[int | None, int | None]:
    for match in FRAME.finditer(stack[:16384]):
        line, column = int(match.group(1)), int(match.group(2))
        if line > HEADER_LINES:
            return user_position(line, column, code)
    return None, None


def split_exception(exc: Exception) -> tuple[str, str]:
    text = str(exc)
    first, _, rest = text.partition("\n")
    return first.strip(), rest


def kind_of(message: str) -> str:
    if message.startswith("InternalError: interrupted"):
        return "timeout"
    if message.startswith("InternalError: out of memory") or "out of memory" in message[:80]:
        return "memory"
    return "error"


def new_context(limits: dict) -> _quickjs.Context:
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
    ctx = new_context(limits)
    ctx.set_time_limit(max(deadline - time.monotonic(), 0.001))
    name = "__syntax_check_" + os.urandom(12).hex()
    head = "async function " + name + "(){\n"
    try:
        ctx.eval(PAD + "throw null; " + head + code + "\n}")
    except _quickjs.JSException as exc:
        message, stack = split_exception(exc)
        if message != "null":
            if kind_of(message) == "memory":
                return {"message": "Polling code is too large to compile", "line": None, "column": None}
            match = FRAME.search(stack)
            line, column = (None, None)
            if match:
                line, column = user_position(int(match.group(1)), int(match.group(2)), code)
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
