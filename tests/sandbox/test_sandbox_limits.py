"""Resource limits hold, end with clear errors, and leave the pool usable."""

from __future__ import annotations

import time

import pytest

TIME_LIMIT = "Polling code exceeded the 0.5 s time limit"
MEMORY_LIMIT = "Polling code exceeded the 16 MiB memory limit"

CPU_HOGS = {
    "loop": "while (true) {}",
    "loop_after_await": "await null;\nwhile (true) {}",
    "loop_after_fetchless_timer": "await new Promise(r => setTimeout(r, 1));\nfor (;;) {}",
    "microtask_spin": "for (;;) await null;",
    "catastrophic_regex": "return /^(a+)+$/.test('a'.repeat(40) + '!')",
    "oom_catch_and_retry": """
        let hog = [];
        for (;;) {
          try { for (;;) hog.push(new Array(100000).fill(7)); }
          catch (e) { hog = []; }
        }
    """,
}

MEMORY_BOMBS = {
    "array": "const a = []; for (;;) a.push({n: a.length});",
    "typed_array_one_shot": "const big = new Uint8Array(256 * 1024 * 1024); return [{id: big.length}];",
    "typed_arrays_many": "const keep = []; for (;;) keep.push(new Float64Array(1 << 18));",
    "string": "const s = 'x'.repeat(64 * 1024 * 1024); return [{id: s.length}];",
}


@pytest.fixture
async def tight_pool(make_pool):
    return await make_pool(wall_time_s=0.5, memory_bytes=16 * 1024 * 1024)


async def _run(pool, code):
    started = time.monotonic()
    result = await pool.run(code, inputs={}, secrets={}, last_poll_time=None)
    return result, time.monotonic() - started


@pytest.mark.parametrize("name", list(CPU_HOGS))
async def test_cpu_hogs_hit_the_time_limit(tight_pool, name):
    result, elapsed = await _run(tight_pool, CPU_HOGS[name])
    assert not result.ok
    if name == "oom_catch_and_retry":
        # Which limit trips first depends on where the interrupt lands.
        assert TIME_LIMIT in result.error.message or MEMORY_LIMIT in result.error.message
    else:
        assert result.error.message.startswith(TIME_LIMIT), result.error.message
    assert elapsed < 1.2
    after, elapsed = await _run(tight_pool, "return [{id: 1}]")
    assert after.ok and elapsed < 1.0


@pytest.mark.parametrize("name", list(MEMORY_BOMBS))
async def test_memory_bombs_hit_the_memory_limit(tight_pool, name):
    result, _ = await _run(tight_pool, MEMORY_BOMBS[name])
    assert not result.ok
    assert result.error.message == MEMORY_LIMIT
    after, elapsed = await _run(tight_pool, "return [{id: 1}]")
    assert after.ok and elapsed < 1.0


async def test_never_settling_promise_fails_fast(tight_pool):
    result, elapsed = await _run(tight_pool, "await new Promise(() => {});\nreturn [];")
    assert not result.ok
    assert result.error.message.startswith("Polling code never finished")
    assert elapsed < 0.3


async def test_timer_past_the_deadline_fails_fast(tight_pool):
    result, elapsed = await _run(tight_pool, "await new Promise(r => setTimeout(r, 60000));")
    assert not result.ok
    assert result.error.message.startswith(TIME_LIMIT)
    assert "setTimeout" in result.error.message
    assert elapsed < 0.3


async def test_too_many_timers(tight_pool):
    result, _ = await _run(tight_pool, "for (let i = 0; i < 2000; i++) setTimeout(() => {}, 1);")
    assert not result.ok
    assert "at most 1000 timers" in result.error.message


async def test_stack_overflow_is_a_normal_error(tight_pool):
    result, _ = await _run(tight_pool, "const f = (n) => f(n + 1) + 1;\nf(0);")
    assert not result.ok
    assert "Maximum call stack size exceeded" in result.error.message
    assert result.error.line == 1


async def test_logs_survive_a_cooperative_timeout(make_pool):
    pool = await make_pool(wall_time_s=0.5)
    result, _ = await _run(pool, "console.log('before the loop');\nwhile (true) {}")
    assert not result.ok and result.error.message.startswith(TIME_LIMIT)
    # If the machine is loaded the parent's kill may win, and logs die with the worker.
    assert result.logs in (["before the loop"], [])


async def test_out_of_memory_is_told_apart_from_throw_null_run_after_run(make_pool):
    # A heap full to the last byte makes QuickJS throw a bare null; the same
    # worker must keep telling that apart from a script that throws null.
    pool = await make_pool(workers=1, wall_time_s=2.0, memory_bytes=16 * 1024 * 1024)
    for _ in range(3):
        bomb, _ = await _run(pool, MEMORY_BOMBS["array"])
        assert bomb.error.message == MEMORY_LIMIT
        thrown, _ = await _run(pool, "throw null;")
        assert thrown.error.message == "Uncaught null"
    # About a third of the limit, legitimately used, is not mistaken for exhaustion.
    big, _ = await _run(pool, "const keep = new Array(3e5).fill(1); throw null;")
    assert big.error.message == "Uncaught null"
