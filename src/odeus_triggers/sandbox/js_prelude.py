"""The JavaScript evaluated in every fresh sandbox context before the user's code.

It installs the shims (console, fetch, URL, URLSearchParams, Headers,
setTimeout) and evaluates to a single ``control`` function that only the
worker's Python driver holds: nothing host-side is registered in the JS
context at all, so user code has no callable path out of the sandbox. fetch
only queues a request description; the driver ships it to the parent.

Intrinsics the driver depends on (JSON, Promise.prototype.then, Date.now) are
captured up front, so user code that monkey-patches them only confuses its own
run instead of the driver. Everything else is deliberately plain: whatever the
user breaks stays inside a context that is thrown away after the run.

The source is package data: js/prelude.js, with the web-API classes in
js/web_shims.js. The two are one closure, so the shims can use the intrinsics
captured at its top; :func:`assemble` splices the shims in. The URL parser is
a pragmatic subset of WHATWG URL, enough for building API URLs; the parent
re-parses every URL it fetches, so leniency there is harmless.

The worker runs by path under ``-I``, where the package may not be importable,
so it reads the two files next to itself and loads this module by path too:
hence nothing here imports from the package.
"""

from __future__ import annotations

# The prelude appends this when the log caps are hit, and results.cap_logs
# recognizes it; the worker hands it to the prelude with each run's config.
LOG_TRUNCATED = "[log output truncated: limit reached]"

PRELUDE_FILE = "prelude.js"
WEB_SHIMS_FILE = "web_shims.js"
_SHIMS_LINE = "// @include web_shims.js\n"


def assemble(prelude: str, web_shims: str) -> str:
    """The one script a context evaluates, from the text of the two files."""
    if prelude.count(_SHIMS_LINE) != 1:
        raise ValueError(f"{PRELUDE_FILE} must contain the line {_SHIMS_LINE.strip()!r} exactly once")
    return prelude.replace(_SHIMS_LINE, web_shims)


def packaged_source() -> str:
    """The prelude from the installed package, for code running inside the package."""
    # Imported here: the worker never calls this, and importlib.resources is
    # not worth its import time on every worker spawn.
    from importlib import resources

    js = resources.files("odeus_triggers.sandbox") / "js"
    return assemble(
        (js / PRELUDE_FILE).read_text(encoding="utf-8"),
        (js / WEB_SHIMS_FILE).read_text(encoding="utf-8"),
    )
