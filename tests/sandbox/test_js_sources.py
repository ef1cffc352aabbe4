"""The prelude's JavaScript lives in package data; these pin down how it is found and shipped."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import pytest

from odeus_triggers.sandbox import js_prelude, results, worker

SANDBOX = Path(js_prelude.__file__).parent
ROOT = SANDBOX.parents[2]


def test_worker_reads_the_same_prelude_as_the_package():
    # The worker reads beside its own file (it may not be able to import the
    # package); both ways must find the same text.
    assert worker.PRELUDE == js_prelude.packaged_source()


def test_shims_are_spliced_into_the_closure():
    prelude = worker.PRELUDE
    assert "// @include" not in prelude
    assert prelude.index("const StringCtor = String;") < prelude.index("class Headers")
    assert prelude.index("class URL") < prelude.index("return function control(")
    assert prelude.rstrip().endswith("})()")


def test_assemble_wants_exactly_one_include_line():
    with pytest.raises(ValueError):
        js_prelude.assemble("(function () {})()\n", "")
    line = "// @include web_shims.js\n"
    with pytest.raises(ValueError):
        js_prelude.assemble(line + line, "")


def test_log_marker_has_one_definition():
    assert results.LOG_TRUNCATED is js_prelude.LOG_TRUNCATED
    for path in (SANDBOX / "js").glob("*.js"):
        assert js_prelude.LOG_TRUNCATED not in path.read_text(encoding="utf-8"), path


def test_package_data_ships_the_js_files():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["odeus_triggers"]
    package = ROOT / "src" / "odeus_triggers"
    files = sorted(p.relative_to(package).as_posix() for p in (SANDBOX / "js").glob("*.js"))
    assert files == ["sandbox/js/prelude.js", "sandbox/js/web_shims.js"]
    for name in files:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name
