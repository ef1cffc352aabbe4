"""Pool lifecycle: reuse, replacement after kills, concurrency, overload, no stray processes."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time

import pytest

from odeus_triggers.sandbox import SandboxLimits, SandboxPool, SandboxUnavailable
from odeus_triggers.sandbox import channel as channel_module

from support.sandbox_helpers import child_pids

ABUSE = [
    ("loop", "while (true) {}"),
    ("loop_after_await", "await null; for (;;) {}"),
    ("regex", "return /^(a+)+$/.test('a'.repeat(40) + '!')"),
    ("oom_retry", "let h = []; for (;;) { try { for (;;) h.push(new Array(1e5).fill(1)); } catch (e) { h = []; } }"),
    ("array_bomb", "const a = []; for (;;) a.push({n: a.length});"),
    ("typed_bomb", "return [{id: new Uint8Array(512 * 1024 * 1024).length}]"),
    ("never_settles", "await new Promise(() => {});"),
    ("host_probe", "return [{id: typeof require + typeof process + typeof std + typeof os}]"),
    ("fetch_loopback", "await fetch('http://127.0.0.1:9/');"),
    ("fetch_metadata", "await fetch('http://169.254.169.254/latest/meta-data/');"),
    ("fetch_file", "await fetch('file:///etc/passwd');"),
    ("escape", "}); while(true){} (async function(){"),
    ("stack", "const f = () => f(); f();"),
    ("throw", "throw new Error('nope');"),
    ("bad_result", "const o = {id: 1}; o.o = o; return [o];"),
    ("log_flood", "for (let i = 0; i < 1e5; i++) console.log('spam', i); return [];"),
]


def rss_mib(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def test_hundred_abusive_runs_leave_no_processes_and_a_working_pool():
    before = child_pids()
    limits = SandboxLimits(workers=2, wall_time_s=0.3, memory_bytes=16 * 1024 * 1024)
    pool = SandboxPool(limits)
    await pool.start()
    outcomes: dict[str, int] = {}
    abuse = itertools.cycle(ABUSE)

    async def stream(count: int) -> None:
        # Two back-to-back streams keep both workers busy, so kills and
        # respawns overlap with runs on the other worker.
        for _ in range(count):
            name, code = next(abuse)
            result = await pool.run(code, inputs={}, secrets={}, last_poll_time=None)
            if name in ("host_probe", "log_flood"):
                assert result.ok, (name, result.error)
            else:
                assert not result.ok, name
                assert result.error.message, name
            outcomes[name] = outcomes.get(name, 0) + 1

    try:
        await pool.run("return []", inputs={}, secrets={}, last_poll_time=None)
        parent_before = rss_mib()
        await asyncio.gather(stream(50), stream(50))
        # Nothing of the abuse may stay behind: not in the API process, not in the workers.
        assert rss_mib() - parent_before < 64
        for slot in pool._runs.slots:
            if slot.worker is not None and slot.worker.alive:
                assert rss_mib(slot.worker.proc.pid) < 16 + 96
        started = time.monotonic()
        ok = await pool.run("return [{id: 'still alive'}]", inputs={}, secrets={}, last_poll_time=None)
        assert ok.ok and ok.events == [{"id": "still alive"}]
        # Generous for a loaded CI box; normally a few milliseconds.
        assert time.monotonic() - started < 1.0
        workers = [slot.worker.proc.pid for slot in pool._runs.slots if slot.worker is not None]
        assert set(workers) <= set(child_pids())
    finally:
        await pool.close()
    assert sum(outcomes.values()) == 100
    leftover = {pid: state for pid, state in child_pids().items() if pid not in before}
    assert leftover == {}


async def test_runs_reuse_warm_workers(pool):
    pids = {slot.worker.proc.pid for slot in pool._runs.slots}
    for _ in range(10):
        assert (await pool.run("return [{id: 1}]", inputs={}, secrets={}, last_poll_time=None)).ok
    assert {slot.worker.proc.pid for slot in pool._runs.slots} == pids


async def test_killed_worker_is_replaced(make_pool):
    pool = await make_pool(workers=1, wall_time_s=0.5)
    first_pid = pool._runs.slots[0].worker.proc.pid
    timed_out = await pool.run("while (true) {}", inputs={}, secrets={}, last_poll_time=None)
    assert not timed_out.ok
    after = await pool.run("return [{id: 1}]", inputs={}, secrets={}, last_poll_time=None)
    assert after.ok
    # An idle worker that dies behind our back is replaced transparently too.
    victim = pool._runs.slots[0].worker.proc.pid
    os.kill(victim, signal.SIGKILL)
    await asyncio.sleep(0.05)
    again = await pool.run("return [{id: 2}]", inputs={}, secrets={}, last_poll_time=None)
    assert again.ok and again.events == [{"id": 2}]
    assert pool._runs.slots[0].worker.proc.pid not in (first_pid, victim)


async def test_concurrent_runs_share_the_pool(pool):
    results = await asyncio.gather(*(
        pool.run(f"await new Promise(r => setTimeout(r, 20)); return [{{id: {i}}}]",
                 inputs={}, secrets={}, last_poll_time=None)
        for i in range(8)
    ))
    assert [r.events for r in results] == [[{"id": i}] for i in range(8)]


async def test_waiting_for_a_worker_is_bounded(make_pool):
    pool = await make_pool(workers=1, wall_time_s=0.3)
    held = await pool._runs.idle.get()  # simulate a worker stuck with another job
    try:
        started = time.monotonic()
        with pytest.raises(SandboxUnavailable, match="busy"):
            await pool.run("return []", inputs={}, secrets={}, last_poll_time=None)
        # wall time (0.3 s) plus the pool's respawn grace (1 s)
        assert 1.25 < time.monotonic() - started < 2.5
    finally:
        pool._runs.idle.put_nowait(held)
    assert (await pool.run("return [{id: 1}]", inputs={}, secrets={}, last_poll_time=None)).ok


async def test_unspawnable_worker_raises_sandbox_unavailable(monkeypatch, tmp_path):
    broken = tmp_path / "worker.py"
    broken.write_text("import sys; sys.exit(3)\n")
    monkeypatch.setattr(channel_module, "_WORKER_SCRIPT", broken)
    pool = SandboxPool(SandboxLimits(workers=1))
    with pytest.raises(SandboxUnavailable):
        await pool.start()
    await pool.close()
    with pytest.raises(SandboxUnavailable):
        await pool.run("return []", inputs={}, secrets={}, last_poll_time=None)


async def test_closed_pool_refuses_work_and_reaps_workers():
    before = child_pids()
    pool = SandboxPool(SandboxLimits(workers=2, check_workers=1))
    await pool.start()
    # Two run workers and one syntax-check worker.
    assert len(set(child_pids()) - set(before)) == 3
    await pool.close()
    assert set(child_pids()) - set(before) == set()
    with pytest.raises(SandboxUnavailable):
        await pool.run("return []", inputs={}, secrets={}, last_poll_time=None)
    with pytest.raises(SandboxUnavailable):
        await pool.check_syntax("return []")


async def test_close_during_a_run_does_not_hang():
    pool = SandboxPool(SandboxLimits(workers=1, wall_time_s=5.0))
    await pool.start()
    running = asyncio.create_task(pool.run("while (true) {}", inputs={}, secrets={}, last_poll_time=None))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await pool.close()
    with pytest.raises(SandboxUnavailable):
        await running
    assert time.monotonic() - started < 1.0


ROGUE_WORKER = """
import json, sys
out = sys.stdout
out.write(json.dumps({"type": "ready"}) + "\\n"); out.flush()
for line in sys.stdin:
    job = json.loads(line)
    if job.get("op") != "run":
        continue
    for i in range(5000):
        out.write(json.dumps({"type": "fetch", "run": job["run"], "id": i + 1, "request": {
            "id": i + 1, "url": "https://example.com/", "method": "GET", "headers": [], "body": None,
            "redirect": "follow"}}) + "\\n")
    out.flush()
    sys.stdin.readline()  # then wait for a reply that must never come
"""


async def test_a_worker_that_floods_fetches_is_killed_at_the_first_one_over_the_limit(monkeypatch, tmp_path):
    rogue = tmp_path / "rogue_worker.py"
    rogue.write_text(ROGUE_WORKER)
    monkeypatch.setattr(channel_module, "_WORKER_SCRIPT", rogue)
    pool = SandboxPool(SandboxLimits(workers=1, wall_time_s=5.0, max_fetches=3, allow_private_network=False))
    await pool.start()
    try:
        pid = pool._runs.slots[0].worker.proc.pid
        started = time.monotonic()
        result = await pool.run("return []", inputs={}, secrets={}, last_poll_time=None)
        assert time.monotonic() - started < 2.0
        assert not result.ok and result.error.message == "fetch refused: more than 3 fetches in one run"
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    finally:
        await pool.close()


async def test_waiting_tenants_take_turns_instead_of_first_come_first_served(make_pool):
    pool = await make_pool(workers=1)
    finished: list[str] = []

    async def run(tenant: str) -> None:
        result = await pool.run("await new Promise(r => setTimeout(r, 100)); return []",
                                inputs={}, secrets={}, last_poll_time=None, tenant=tenant)
        assert result.ok, result.error
        finished.append(tenant)

    flood = [asyncio.create_task(run("a")) for _ in range(3)]
    await asyncio.sleep(0.02)
    late = asyncio.create_task(run("b"))
    await asyncio.gather(*flood, late)
    # b queued behind a's three, but is served as soon as a's first run ends.
    assert finished == ["a", "b", "a", "a"]


async def test_a_tenant_over_its_queue_is_told_it_is_busy_while_others_run(make_pool):
    from odeus_triggers.sandbox import SandboxBusy

    pool = await make_pool(workers=2, max_runs_per_tenant=1, max_queued_per_tenant=1)
    slow = "await new Promise(r => setTimeout(r, 500)); return []"
    held = [asyncio.create_task(pool.run(slow, inputs={}, secrets={}, last_poll_time=None, tenant="a"))
            for _ in range(2)]
    await asyncio.sleep(0.05)
    with pytest.raises(SandboxBusy):
        await pool.run("return []", inputs={}, secrets={}, last_poll_time=None, tenant="a")
    other = await pool.run("return [{id: 1}]", inputs={}, secrets={}, last_poll_time=None, tenant="b")
    assert other.ok
    assert all(r.ok for r in await asyncio.gather(*held))
