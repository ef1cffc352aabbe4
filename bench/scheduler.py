"""Benchmark: the scheduler (issue 12, "Benchmarks"), in sub-benchmarks chosen with --only.

    .venv/bin/python bench/scheduler.py [--only overhead,bookkeeping,lag,claim,sqlite,memory]

Every part starts from a fresh Postgres database, cloned from a template that this script builds
once: migrated, bootstrapped, one `return [];` trigger and one subscription created through the
running service's API, then that trigger cloned into `--workspaces` workspaces (the sandbox
shares its workers per workspace, so one workspace alone would only measure the fairness gate)
and that subscription copied in bulk by INSERT … SELECT, column for column, with only the ids,
the owner, the interval and the due time changed. `ODEUS_ENCRYPTION_KEYS` is a throwaway key.

- overhead: polls/s of two `odeus-triggers worker` processes (interval 1 s, far more due than
  they can poll), from `poll_runs` counts over a window, against two processes that run the
  same code with `SandboxPool.run` in a loop at the same concurrency, with no database;
  alternating rounds, medians. Goal ≥ 0.7.
- bookkeeping: what a worker does around the sandbox, per claimed batch: `poll_batches.claim_batch`
  and `poll_batches.write_batch` of polls that returned nothing (no sandbox), per second, against
  asyncpg running the same two statements (`claims_pg.CLAIM_SQL`, `poll_write_pg.WRITE_SQL`),
  prepared, with the same concurrency and batch. Goal ≥ 0.5.
- lag: 100,000 subscriptions whose intervals make the due rate half the measured capacity;
  p50/p99 of (start − due) of every poll in the window. Goal p99 ≤ 2 s. Then overload: all due,
  spread over the past; after a window, were the oldest polled first?
- claim: `poll_batches.claim_batch` latency (on Postgres the claim with its load, one statement)
  with 10,000 and with 1,000,000 subscriptions, the same due rate on both, claimed in turn (up to
  50 every 50 ms, claimed rows completed at once). Goal p99 ratio ≤ 1.5.
- sqlite: polls/s of `serve` on SQLite with its embedded worker, next to the raw sandbox rate.
- memory: one worker's VmRSS after 1,000 and after 100,000 of its own polls (its
  `odeus_polls_total`), and its sandbox processes'. Goal: within 50 MB.

It is not a test, and CI does not run it. Figures in docs/benchmark.md, "Scheduler".
"""

import argparse
import asyncio
import json
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

# bench/run.py's helpers: the same database and process handling as the other benchmarks.
from run import BIN, PG, ROOT, free_port, psql, stop, wait_http

CODE = "return [];"
TEMPLATE = "odeus_bench_sched_template"
DB = "odeus_bench_sched"
HERE = Path(__file__).resolve().parent
# One throwaway key for the whole run: the template's canary is sealed under it.
KEY = os.environ.get("ODEUS_BENCH_KEY") or ""
POLLS = re.compile(r'^odeus_polls_total\{outcome="([^"]+)"\} ([\d.e+]+)$', re.M)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def url_of(db: str, driver: str = "postgresql+asyncpg") -> str:
    return f"{driver}://{PG['user']}@{PG['host']}:{PG['port']}/{db}"


def base_env(database_url: str, args: argparse.Namespace) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": database_url, "ODEUS_ENCRYPTION_KEYS": KEY,
           "ODEUS_RATE_LIMIT": "100000000/minute", "ODEUS_RATE_LIMIT_UNAUTHENTICATED": "100000000/minute",
           "ODEUS_LOG_LEVEL": "WARNING", "ODEUS_MIN_INTERVAL_SECONDS": "1",
           "ODEUS_POLLING_WORKERS": str(args.polling_workers)}
    env.pop("REDIS_URL", None)
    return env


def cli(env: dict[str, str], *argv: str) -> str:
    return subprocess.run([str(BIN / "odeus-triggers"), *argv], env=env, check=True, capture_output=True,
                          text=True).stdout


def post(url: str, key: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {key}",
    })
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(json.load(response))


def spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    out = open(log_path, "ab")  # noqa: SIM115 - the child keeps it for its whole life
    return subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=out, start_new_session=True)


def create_through_api(env: dict[str, str], args: argparse.Namespace) -> dict[str, str]:
    """One trigger and one subscription through the real routes: the rows the bulk copies copy."""
    boot = json.loads(cli(env, "bootstrap", "--workspace", "bench-scheduler", "--json"))
    port = free_port()
    service = spawn([str(BIN / "odeus-triggers"), "serve", "--port", str(port), "--workers", "1"], env,
                    Path(args.logs) / "serve-setup.log")
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/openapi.json", 60)
        integration = f"{base}/integrations/v1/{boot['integrationId']}"
        trigger = post(f"{integration}/triggers/create", boot["apiKey"],
                       {"name": "Bench Empty", "pollingCode": CODE})["trigger"]
        sub = post(f"{integration}/triggers/{trigger['id']}/subscriptions", boot["apiKey"],
                   {"inputs": {}, "webhookUrl": "https://93.184.215.14/h", "intervalSeconds": 1})["subscription"]
    finally:
        stop(service)
    return {"workspace": boot["workspaceId"], "integration": boot["integrationId"], "trigger": trigger["id"],
            "subscription": sub["id"]}


# ------------------------------------------------------------------------------------ Postgres

def build_template(args: argparse.Namespace) -> dict[str, str]:
    log("building the template database (migrate, bootstrap, one trigger and subscription through the API)")
    psql(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
    psql(f'CREATE DATABASE "{TEMPLATE}"')
    env = base_env(url_of(TEMPLATE), args)
    cli(env, "migrate")
    made = create_through_api(env, args)
    w = args.workspaces
    # Workspaces, integrations and triggers cloned from the API-made ones, so that every poll's
    # tenant is a real workspace with a real trigger.
    psql(f"""
        CREATE TABLE bench_owners AS SELECT i, gen_random_uuid() ws, gen_random_uuid() integ, gen_random_uuid() trig
          FROM generate_series(0, {w - 1}) i;
        INSERT INTO workspaces (id, name, created_at) SELECT ws, 'bench-' || i, now() FROM bench_owners;
        INSERT INTO integrations (id, workspace_id, name, description, created_at)
          SELECT o.integ, o.ws, n.name, n.description, n.created_at FROM bench_owners o, integrations n
          WHERE n.id = '{made["integration"]}';
        INSERT INTO triggers (id, integration_id, name, slug, description, type, polling_code, created_at, updated_at)
          SELECT o.trig, o.integ, t.name, t.slug, t.description, t.type, t.polling_code, t.created_at, t.updated_at
          FROM bench_owners o, triggers t WHERE t.id = '{made["trigger"]}';
    """, TEMPLATE)
    psql(f"UPDATE subscriptions SET status = 'paused' WHERE id = '{made['subscription']}'", TEMPLATE)
    return made


def fresh_db(name: str) -> None:
    psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    psql(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')


def fill(db: str, made: dict[str, str], n: int, interval: str, next_poll_at: str) -> None:
    """`n` copies of the API-made subscription, spread over the cloned owners. `interval` and
    `next_poll_at` are SQL over g (0 … n-1); copies are already seeded, as in steady state."""
    cols = psql("SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns "
                "WHERE table_name = 'subscriptions'", db).strip().split(",")
    overrides = {
        "id": "gen_random_uuid()", "workspace_id": "o.ws", "integration_id": "o.integ", "trigger_id": "o.trig",
        "status": "'active'", "interval_seconds": interval, "next_poll_at": next_poll_at,
        "seeded_at": "now() - interval '1 day'", "last_poll_time": "now() - interval '1 hour'",
        "created_at": "now()", "updated_at": "now()",
    }
    select = ", ".join(overrides.get(c, f"s.{c}") for c in cols)
    started = time.monotonic()
    psql(f"""
        INSERT INTO subscriptions ({",".join(cols)})
        SELECT {select} FROM generate_series(0, {n - 1}) g
          JOIN bench_owners o ON o.i = g % (SELECT count(*) FROM bench_owners)
          CROSS JOIN (SELECT * FROM subscriptions WHERE id = '{made["subscription"]}') s;
    """, db)
    psql("VACUUM ANALYZE subscriptions", db)
    log(f"{n:,} subscriptions inserted in {time.monotonic() - started:.1f} s")


def count_runs(db: str) -> int:
    return int(psql("SELECT count(*) FROM poll_runs", db))


def transactions(db: str) -> int:
    # Backends report their counts at most once a second: good enough over a whole window.
    return int(psql(f"SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '{db}'"))


def outcomes(db: str) -> str:
    return psql("SELECT string_agg(outcome || '=' || c, ' ') FROM (SELECT outcome, count(*) c FROM poll_runs "
                "GROUP BY 1 ORDER BY 1) x", db).strip()


def metrics_polls(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return sum(float(v) for _, v in POLLS.findall(r.read().decode()))


def start_workers(db: str, args: argparse.Namespace, count: int, tag: str) -> list[tuple[subprocess.Popen, int]]:
    env = base_env(url_of(db), args)
    workers = []
    for i in range(count):
        port = free_port()
        argv = [str(BIN / "odeus-triggers"), "worker", "--concurrency", str(args.concurrency),
                "--metrics-port", str(port), "--metrics-host", "127.0.0.1"]
        workers.append((spawn(argv, env, Path(args.logs) / f"worker-{tag}-{i}.log"), port))
    for _, port in workers:
        wait_http(f"http://127.0.0.1:{port}/healthz", 60)
    return workers


def stop_workers(workers: list[tuple[subprocess.Popen, int]]) -> None:
    for proc, _ in workers:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for proc, _ in workers:
        stop(proc)


def sandbox_unavailable_lines(args: argparse.Namespace, tag: str) -> int:
    return sum(p.read_text(errors="replace").count("sandbox could not take a poll")
               for p in Path(args.logs).glob(f"worker-{tag}-*.log"))


# --------------------------------------------------------------------------- raw sandbox loop

async def raw_sandbox(concurrency: int, warmup: float, duration: float) -> None:
    """`SandboxPool.run` in a loop with `concurrency` callers and no database: the ceiling."""
    from odeus_triggers.config import Settings
    from odeus_triggers.sandbox import SandboxPool
    from odeus_triggers.sandbox.limits import sandbox_limits

    pool = SandboxPool(sandbox_limits(Settings()))
    await pool.start()
    done = 0
    counting = False
    stopping = False

    async def caller(i: int) -> None:
        nonlocal done
        # One tenant per caller, as the worker's claims spread over many workspaces.
        while not stopping:
            result = await pool.run(CODE, inputs={}, secrets={}, last_poll_time=None, tenant=f"t{i}")
            assert result.ok, result
            if counting:
                done += 1

    tasks = [asyncio.create_task(caller(i)) for i in range(concurrency)]
    await asyncio.sleep(warmup)
    counting = True
    started, cpu0 = time.monotonic(), cpu_split([os.getpid()])
    await asyncio.sleep(duration)
    counting = False
    elapsed, cpu1 = time.monotonic() - started, cpu_split([os.getpid()])
    stopping = True
    await asyncio.gather(*tasks, return_exceptions=True)
    await pool.close()
    print(json.dumps({"runs": done, "seconds": elapsed,
                      "cpu_ms_per_run": {k: (cpu1[k] - cpu0[k]) * 1000 / max(done, 1) for k in ("worker", "sandbox")}}))


def raw_rate(args: argparse.Namespace, processes: int) -> float:
    """Runs/s of `processes` raw loops side by side (one per worker being compared)."""
    env = base_env("sqlite+aiosqlite:///unused.db", args)
    argv = [sys.executable, str(HERE / "scheduler.py"), "--_raw-sandbox", "--concurrency", str(args.concurrency),
            "--warmup", str(args.warmup), "--window", str(args.window)]
    procs = [subprocess.Popen(argv, env=env, cwd=HERE, stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    total = 0.0
    for proc in procs:
        out, _ = proc.communicate(timeout=args.warmup + args.window + 120)
        r = json.loads(out.strip().splitlines()[-1])
        total += r["runs"] / r["seconds"]
        log(f"raw loop: {r['runs'] / r['seconds']:.0f} runs/s; CPU ms per run: "
            + ", ".join(f"{k} {v:.2f}" for k, v in r["cpu_ms_per_run"].items()))
    return total


# ------------------------------------------------------------------------------ sub-benchmarks

def e2e_rate(args: argparse.Namespace, made: dict[str, str], tag: str) -> tuple[float, str]:
    fresh_db(DB)
    fill(DB, made, args.overhead_subscriptions, "1", "now() - (g % 1000) * interval '1 millisecond'")
    workers = start_workers(DB, args, 2, tag)
    try:
        time.sleep(args.warmup)
        pids = [proc.pid for proc, _ in workers]
        before, t0, xacts0, cpu0 = count_runs(DB), time.monotonic(), transactions(DB), cpu_split(pids)
        time.sleep(args.window)
        after, t1, xacts1, cpu1 = count_runs(DB), time.monotonic(), transactions(DB), cpu_split(pids)
    finally:
        stop_workers(workers)
    polls = max(after - before, 1)
    # Postgres's share includes whatever else uses this server meanwhile; other jobs rarely do.
    cpu = ", ".join(f"{k} {(cpu1[k] - cpu0[k]) * 1000 / polls:.2f}" for k in cpu0)
    return (after - before) / (t1 - t0), (f"{outcomes(DB)}; {(xacts1 - xacts0) / polls:.1f} transactions per poll; "
                                          f"CPU ms per poll: {cpu}")


def bench_overhead(args: argparse.Namespace, made: dict[str, str], results: dict[str, Any]) -> None:
    e2e, raw = [], []
    for r in range(args.rounds):
        log(f"overhead round {r + 1}: raw sandbox loops (2 processes)")
        raw.append(raw_rate(args, 2))
        log(f"overhead round {r + 1}: raw {raw[-1]:.0f} runs/s; two workers")
        rate, seen = e2e_rate(args, made, f"overhead{r}")
        e2e.append(rate)
        log(f"overhead round {r + 1}: workers {rate:.0f} polls/s ({seen})")
    unavailable = sandbox_unavailable_lines(args, "overhead")
    results["overhead"] = {"e2e": statistics.median(e2e), "raw": statistics.median(raw), "e2e_all": e2e,
                           "raw_all": raw, "ratio": statistics.median(e2e) / statistics.median(raw),
                           "sandbox_unavailable_logged": unavailable}
    o = results["overhead"]
    print(f"\nScheduler overhead ({args.rounds} alternating rounds, {args.window:.0f} s windows, medians; "
          f"ODEUS_POLLING_WORKERS={args.polling_workers}, --concurrency {args.concurrency})")
    print(f"  two workers, end to end       {o['e2e']:8.0f} polls/s   rounds: {', '.join(f'{x:.0f}' for x in e2e)}")
    print(f"  two raw SandboxPool.run loops {o['raw']:8.0f} runs/s    rounds: {', '.join(f'{x:.0f}' for x in raw)}")
    print(f"  ratio end to end / raw = {o['ratio']:.2f}   (goal >= 0.7); 'sandbox could not take a poll' "
          f"warnings: {unavailable}")


async def bookkeeping_orm(db: str, args: argparse.Namespace, duration: float) -> float:
    from odeus_triggers.config import Settings
    from odeus_triggers.db.engine import make_engine
    from odeus_triggers.subscriptions.poll import PollDeps
    from odeus_triggers.subscriptions.poll_batches import claim_batch, write_batch
    from odeus_triggers.subscriptions.poll_write import Finished

    settings = Settings(database_url=url_of(db), db_pool_size=args.bk_tasks)
    engine = make_engine(settings, kind="worker")
    deps = PollDeps(engine=engine, sandbox=None, keyring=None)  # type: ignore[arg-type]  # no poll runs here
    done = 0
    deadline = time.monotonic() + duration

    async def loop() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            began = time.monotonic()
            claimed = await claim_batch(deps, args.bk_batch, 40.0)
            batch = [
                Finished(claim=c, outcome="ok", error=None, returned=0, seeding=False,
                         interval_seconds=loaded.row.interval_seconds,
                         failures_before=loaded.row.consecutive_failures, began=began)
                for c, loaded in claimed
            ]
            if batch:
                await write_batch(deps, batch)
            done += len(batch)

    started, cpu = time.monotonic(), time.process_time()
    await asyncio.gather(*(loop() for _ in range(args.bk_tasks)))
    rate = done / (time.monotonic() - started)
    log(f"bookkeeping, service code: {(time.process_time() - cpu) * 1000 / max(done, 1):.2f} ms of client CPU per poll")
    await engine.dispose()
    return rate


async def bookkeeping_raw(db: str, args: argparse.Namespace, duration: float) -> float:
    """The worker's two statements per batch, the very SQL it sends (`claims_pg.CLAIM_SQL` and
    `poll_write_pg.WRITE_SQL`), prepared once and run by asyncpg with parameters built inline."""
    import datetime as dt

    import asyncpg

    from odeus_triggers.subscriptions.claims_pg import CLAIM_SQL
    from odeus_triggers.subscriptions.poll_write_pg import WRITE_SQL
    from odeus_triggers.subscriptions.schedule import PauseRule, success_delay

    pool = await asyncpg.create_pool(f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{db}",
                                     min_size=args.bk_tasks, max_size=args.bk_tasks)
    done = 0
    deadline = time.monotonic() + duration
    lease = dt.timedelta(seconds=40)
    rule = PauseRule()
    rule_params = (rule.invalid_outputs, rule.failures, dt.timedelta(seconds=rule.failing_s))

    async def loop() -> None:
        nonlocal done
        async with pool.acquire() as conn:
            claim, write = [await conn.prepare(q) for q in (CLAIM_SQL, WRITE_SQL)]
            while time.monotonic() < deadline:
                began = time.monotonic()
                rows = await claim.fetch(args.bk_batch, lease)
                if not rows:
                    continue
                n = len(rows)
                ms = (time.monotonic() - began) * 1000
                rows = sorted(rows, key=lambda r: r["id"])
                await write.fetch(
                    [r["id"] for r in rows], [r["lease_epoch"] for r in rows], [True] * n, [False] * n, [False] * n,
                    [None] * n, [dt.timedelta(seconds=success_delay(r["interval_seconds"])) for r in rows],
                    [r["started_at"] for r in rows], [None] * n, [uuid.uuid4() for _ in rows],
                    [r["started_at"] for r in rows], ["ok"] * n, [0] * n, [ms] * n, [False] * n,
                    [], [], [], [], [], [], *rule_params,
                )
                done += n

    started, cpu = time.monotonic(), time.process_time()
    await asyncio.gather(*(loop() for _ in range(args.bk_tasks)))
    rate = done / (time.monotonic() - started)
    log(f"bookkeeping, raw asyncpg: {(time.process_time() - cpu) * 1000 / max(done, 1):.2f} ms of client CPU per poll")
    await pool.close()
    return rate


def bench_bookkeeping(args: argparse.Namespace, made: dict[str, str], results: dict[str, Any]) -> None:
    fresh_db(DB)
    fill(DB, made, args.overhead_subscriptions, "1", "now() - (g % 1000) * interval '1 millisecond'")
    orm, raw = [], []
    for r in range(args.rounds):
        raw.append(asyncio.run(bookkeeping_raw(DB, args, args.window)))
        orm.append(asyncio.run(bookkeeping_orm(DB, args, args.window)))
        log(f"bookkeeping round {r + 1}: service code {orm[-1]:.0f}/s, raw asyncpg {raw[-1]:.0f}/s")
    b = {"service": statistics.median(orm), "raw": statistics.median(raw)}
    b["ratio"] = b["service"] / b["raw"]
    results["bookkeeping"] = b
    print(f"\nBookkeeping alone ({args.bk_tasks} loops, claims of {args.bk_batch}, two statements per "
          f"claimed batch, {args.rounds} alternating rounds of {args.window:.0f} s, medians)")
    print(f"  claim_batch + write_batch         {b['service']:8.0f} polls/s   rounds: "
          f"{', '.join(f'{x:.0f}' for x in orm)}")
    print(f"  asyncpg, same statements prepared {b['raw']:8.0f} polls/s   rounds: {', '.join(f'{x:.0f}' for x in raw)}")
    print(f"  ratio = {b['ratio']:.2f}   (goal >= 0.5)")


def lag_stats(db: str, since_sql: str) -> dict[str, float]:
    # Each subscription is polled at most once in the window (its interval is far longer), so its
    # claimed_due_at is the due time of that very poll.
    out = psql(f"""
        SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY lag), percentile_cont(0.99) WITHIN GROUP
               (ORDER BY lag), max(lag)
        FROM (SELECT extract(epoch FROM r.started_at - s.claimed_due_at) lag
              FROM poll_runs r JOIN subscriptions s ON s.id = r.subscription_id WHERE r.started_at >= {since_sql}) x
    """, db).strip().split("|")
    return {"polls": int(out[0]), "p50": float(out[1] or "nan"), "p99": float(out[2] or "nan"),
            "max": float(out[3] or "nan")}


def bench_lag(args: argparse.Namespace, made: dict[str, str], results: dict[str, Any]) -> None:
    capacity = args.capacity or results.get("overhead", {}).get("e2e")
    if not capacity:
        raise SystemExit("bench: lag needs --capacity (polls/s) or the overhead part in the same run")
    n = args.lag_subscriptions
    interval = max(1, round(n / (capacity / 2)))
    fresh_db(DB)
    # Due times spread evenly over one interval: a steady due rate of n / interval from the start.
    fill(DB, made, n, str(interval), f"now() + {interval} * random() * interval '1 second'")
    started_at = psql("SELECT now()", DB).strip()
    workers = start_workers(DB, args, 2, "lag")
    try:
        time.sleep(args.warmup)
        since = psql("SELECT now()", DB).strip()
        time.sleep(args.lag_window)
    finally:
        stop_workers(workers)
    stats = lag_stats(DB, f"'{since}'")
    rate = stats["polls"] / args.lag_window
    ordered = bench_overload(args, made)
    results["lag"] = {"interval": interval, "capacity": capacity, **stats, "rate": rate, "overload": ordered,
                      "since_start": started_at}
    print(f"\nScheduling lag ({n:,} subscriptions, interval {interval} s: due rate {n / interval:.0f}/s = 50 % of "
          f"{capacity:.0f} polls/s; two workers; {args.lag_window:.0f} s window after {args.warmup:.0f} s)")
    print(f"  {stats['polls']:,} polls ({rate:.0f}/s): lag p50 {stats['p50'] * 1000:.0f} ms, p99 "
          f"{stats['p99'] * 1000:.0f} ms, max {stats['max'] * 1000:.0f} ms   (goal p99 <= 2000 ms)")
    o = ordered
    print(f"  overload ({n:,} all due, spread over the past {o['spread']} s; {args.overload_window:.0f} s window): "
          f"{o['polled']:,} polled")
    print(f"    newest due time among those polled: {o['newest_polled_s']:.1f} s ago; oldest due time left: "
          f"{o['oldest_unpolled_s']:.1f} s ago; polled out of order (due later than the oldest left): "
          f"{o['out_of_order']:,} ({o['out_of_order_pct']:.2f} %)")
    print(f"    rank correlation of claim order vs due order: {o['rank_corr']:.4f}")


def bench_overload(args: argparse.Namespace, made: dict[str, str]) -> dict[str, Any]:
    n, spread = args.lag_subscriptions, 3600
    fresh_db(DB)
    # Every row due, in a random order on disk: a physical-order scan would show as disorder.
    fill(DB, made, n, "3600", f"now() - {spread} * random() * interval '1 second'")
    workers = start_workers(DB, args, 2, "overload")
    try:
        time.sleep(args.overload_window)
    finally:
        stop_workers(workers)
    out = psql("""
        WITH polled AS (SELECT s.claimed_due_at due FROM subscriptions s WHERE s.claimed_due_at IS NOT NULL),
             left_ AS (SELECT min(next_poll_at) oldest FROM subscriptions WHERE claimed_due_at IS NULL)
        SELECT (SELECT count(*) FROM polled),
               extract(epoch FROM now() - (SELECT max(due) FROM polled)),
               extract(epoch FROM now() - (SELECT oldest FROM left_)),
               (SELECT count(*) FROM polled, left_ WHERE due > oldest)
    """, DB).strip().split("|")
    corr = psql("""
        SELECT corr(rc, rd) FROM (SELECT rank() OVER (ORDER BY s.claimed_due_at) rd,
                                         rank() OVER (ORDER BY r.started_at, r.finished_at) rc
                                  FROM poll_runs r JOIN subscriptions s ON s.id = r.subscription_id) x
    """, DB).strip()
    polled = int(out[0])
    return {"spread": spread, "polled": polled, "newest_polled_s": float(out[1]), "oldest_unpolled_s": float(out[2]),
            "out_of_order": int(out[3]), "out_of_order_pct": 100 * int(out[3]) / max(polled, 1),
            "rank_corr": float(corr or "nan")}


async def claim_latencies(dbs: dict[int, str], args: argparse.Namespace) -> dict[int, dict[str, float]]:
    """Claims on both tables in turn, tick after tick, so that whatever else the machine does
    lands on both alike."""
    from sqlalchemy import text

    from odeus_triggers.config import Settings
    from odeus_triggers.db.engine import make_engine
    from odeus_triggers.subscriptions.poll import PollDeps
    from odeus_triggers.subscriptions.poll_batches import claim_batch

    engines = {n: make_engine(Settings(database_url=url_of(db)), kind="worker") for n, db in dbs.items()}
    deps = {n: PollDeps(engine=e, sandbox=None, keyring=None) for n, e in engines.items()}  # type: ignore[arg-type]
    times: dict[int, list[float]] = {n: [] for n in dbs}
    rows: dict[int, list[int]] = {n: [] for n in dbs}
    for i in range(args.claim_iterations):
        tick = time.monotonic()
        for n, engine in engines.items():
            began = time.perf_counter()
            claims = [c for c, _ in await claim_batch(deps[n], 50, 40.0)]
            if i >= 20:  # the first claims warm the cache
                times[n].append(time.perf_counter() - began)
                rows[n].append(len(claims))
            if claims:
                # The completion, untimed: claimed rows go one interval ahead, as a finished poll does.
                async with engine.begin() as conn:
                    await conn.execute(text(
                        "UPDATE subscriptions SET next_poll_at = now() + make_interval(secs => :s), "
                        "lease_expires_at = NULL WHERE id = ANY(:ids)"),
                        {"s": n / args.claim_due_rate, "ids": [c.id for c in claims]})
        await asyncio.sleep(max(0.0, args.claim_every - (time.monotonic() - tick)))
    for engine in engines.values():
        await engine.dispose()
    out = {}
    for n in dbs:
        ordered = sorted(times[n])
        out[n] = {"p50": statistics.median(ordered), "p90": ordered[round(0.9 * (len(ordered) - 1))],
                  "p99": ordered[round(0.99 * (len(ordered) - 1))], "max": ordered[-1],
                  "rows": statistics.mean(rows[n])}
    return out


def bench_claim(args: argparse.Namespace, made: dict[str, str], results: dict[str, Any]) -> None:
    dbs = {10_000: f"{DB}_10k", 1_000_000: f"{DB}_1m"}
    for n, db in dbs.items():
        fresh_db(db)
        interval = n / args.claim_due_rate
        # Due times over one interval, a second's worth already due: rows come due at the same
        # rate on both tables, so only the table's size differs.
        fill(db, made, n, str(max(1, round(interval))), f"now() + ({interval} * random() - 1) * interval '1 second'")
    # The fills wrote most of a GB: without this, the checkpoint they bring lands on the timed claims.
    psql("CHECKPOINT", dbs[1_000_000])
    out = asyncio.run(claim_latencies(dbs, args))
    sizes = psql("SELECT pg_size_pretty(pg_total_relation_size('subscriptions'))", dbs[1_000_000]).strip()
    for db in dbs.values():
        psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    ratio = out[1_000_000]["p99"] / out[10_000]["p99"]
    results["claim"] = {"10k": out[10_000], "1M": out[1_000_000], "ratio": ratio,
                        "p50_ratio": out[1_000_000]["p50"] / out[10_000]["p50"]}
    print(f"\nClaim cost (claim_batch, limit 50, both tables in turn every {args.claim_every * 1000:.0f} ms, "
          f"due rate {args.claim_due_rate:.0f}/s on both; {args.claim_iterations - 20} timed claims each; "
          f"the 1M table with its indexes: {sizes})")
    for n, r in out.items():
        print(f"  {n:>9,} subscriptions: p50 {r['p50'] * 1000:6.2f} ms  p90 {r['p90'] * 1000:6.2f} ms  "
              f"p99 {r['p99'] * 1000:6.2f} ms  max {r['max'] * 1000:6.2f} ms  rows/claim {r['rows']:.1f}")
    print(f"  p99 ratio 1,000,000 / 10,000 = {ratio:.2f}   (goal <= 1.5); p50 ratio "
          f"{results['claim']['p50_ratio']:.2f}")


# ---------------------------------------------------------------------------------------- SQLite

def bench_sqlite(args: argparse.Namespace, results: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        env = base_env(f"sqlite+aiosqlite:///{path}", args)
        env.pop("ODEUS_EMBEDDED_WORKER", None)
        cli(env, "migrate")
        made = create_through_api(env, args)
        hexid = {k: uuid.UUID(v).hex for k, v in made.items()}
        db = sqlite3.connect(path)
        cols = [r[1] for r in db.execute("PRAGMA table_info(subscriptions)")]
        row = dict(zip(cols, db.execute("SELECT * FROM subscriptions WHERE id = ?", (hexid["subscription"],)).fetchone(),
                       strict=True))
        if row["id"] != hexid["subscription"]:
            raise SystemExit(f"bench: unexpected id format in SQLite: {row['id']!r}")
        owners = []
        ws = db.execute("SELECT * FROM workspaces WHERE id = ?", (hexid["workspace"],)).fetchone()
        integ = db.execute("SELECT * FROM integrations WHERE id = ?", (hexid["integration"],)).fetchone()
        trig = db.execute("SELECT * FROM triggers WHERE id = ?", (hexid["trigger"],)).fetchone()
        for i in range(args.workspaces):
            w, n, t = uuid.uuid4().hex, uuid.uuid4().hex, uuid.uuid4().hex
            db.execute("INSERT INTO workspaces VALUES (?, ?, ?)", (w, f"bench-{i}", ws[2]))
            db.execute("INSERT INTO integrations VALUES (?, ?, ?, ?, ?)", (n, w, *integ[2:]))
            db.execute("INSERT INTO triggers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (t, n, *trig[2:]))
            owners.append((w, n, t))
        copies = []
        for g in range(args.sqlite_subscriptions):
            w, n, t = owners[g % len(owners)]
            copies.append(tuple({**row, "id": uuid.uuid4().hex, "workspace_id": w, "integration_id": n,
                                 "trigger_id": t, "seeded_at": row["created_at"],
                                 "last_poll_time": row["created_at"]}[c] for c in cols))
        db.executemany(f"INSERT INTO subscriptions VALUES ({','.join('?' * len(cols))})", copies)
        db.execute("UPDATE subscriptions SET status = 'paused' WHERE id = ?", (hexid["subscription"],))
        db.commit()
        log(f"sqlite: {len(copies):,} subscriptions copied")

        raw = raw_rate(args, 1)
        port = free_port()
        service = spawn([str(BIN / "odeus-triggers"), "serve", "--port", str(port), "--workers", "1"], env,
                        Path(args.logs) / "serve-sqlite.log")
        try:
            wait_http(f"http://127.0.0.1:{port}/openapi.json", 60)
            time.sleep(args.warmup)
            before, t0 = db.execute("SELECT count(*) FROM poll_runs").fetchone()[0], time.monotonic()
            time.sleep(args.window)
            after, t1 = db.execute("SELECT count(*) FROM poll_runs").fetchone()[0], time.monotonic()
            seen = db.execute("SELECT outcome, count(*) FROM poll_runs GROUP BY 1").fetchall()
        finally:
            stop(service)
        db.close()
    rate = (after - before) / (t1 - t0)
    results["sqlite"] = {"rate": rate, "raw": raw, "ratio": rate / raw}
    print(f"\nSQLite embedded (`serve` with its embedded worker, {args.sqlite_subscriptions:,} subscriptions, "
          f"interval 1 s, --concurrency default; {args.window:.0f} s window)")
    print(f"  {rate:.0f} polls/s in one process   outcomes: {seen}")
    print(f"  one raw SandboxPool.run loop, run just before: {raw:.0f} runs/s   ratio {rate / raw:.2f}")


# ---------------------------------------------------------------------------------------- memory

def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def cpu_s(pids: list[int], reaped: bool = False) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime; or cutime, cstime: children already waited for (recycled sandbox workers).
        total += int(fields[13]) + int(fields[14]) if reaped else int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def postgres_pids() -> list[int]:
    pids = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "postgres":
                pids.append(int(comm.parent.name))
        except OSError:
            continue
    return pids


def cpu_split(workers: list[int]) -> dict[str, float]:
    """CPU seconds so far of the worker processes, their sandbox processes, and Postgres."""
    kids = [k for w in workers for k in children(w)]
    return {"worker": cpu_s(workers), "sandbox": cpu_s(kids) + cpu_s(workers, reaped=True),
            "postgres": cpu_s(postgres_pids())}


def bench_memory(args: argparse.Namespace, made: dict[str, str], results: dict[str, Any]) -> None:
    fresh_db(DB)
    fill(DB, made, args.overhead_subscriptions, "1", "now() - (g % 1000) * interval '1 millisecond'")
    workers = start_workers(DB, args, 1, "memory")
    proc, port = workers[0]
    marks = sorted({1_000, *args.memory_marks, args.memory_polls})
    samples: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        for mark in marks:
            while (polls := metrics_polls(port)) < mark:
                if proc.poll() is not None:
                    raise SystemExit("bench: the worker died")
                time.sleep(0.2)
            kids = children(proc.pid)
            sample = {"polls": int(polls), "seconds": time.monotonic() - started, "worker_mb": rss_kb(proc.pid) / 1024,
                      "sandbox_mb": [round(rss_kb(k) / 1024, 1) for k in kids]}
            samples.append(sample)
            log(f"memory: {sample}")
    finally:
        stop_workers(workers)
    first = next(s for s in samples if s["polls"] >= 1_000)
    last = samples[-1]
    results["memory"] = {"samples": samples, "growth_mb": last["worker_mb"] - first["worker_mb"]}
    print(f"\nMemory (one worker, --concurrency {args.concurrency}; VmRSS at its own poll counts)")
    for s in samples:
        print(f"  after {s['polls']:>8,} polls ({s['seconds']:6.0f} s): worker {s['worker_mb']:6.1f} MB, "
              f"sandbox processes {s['sandbox_mb']} MB")
    print(f"  growth from 1,000 to {last['polls']:,} polls: {results['memory']['growth_mb']:+.1f} MB   "
          f"(goal within 50 MB)")


# ------------------------------------------------------------------------------------------ main

PARTS = ("overhead", "bookkeeping", "lag", "claim", "sqlite", "memory")


def main() -> None:
    global KEY
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts: {', '.join(PARTS)}")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of overhead and bookkeeping")
    parser.add_argument("--window", type=float, default=15.0, help="seconds counted per round")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before counting starts")
    parser.add_argument("--concurrency", type=int, default=50, help="the worker's --concurrency, and the raw loop's")
    parser.add_argument("--polling-workers", type=int, default=2, help="ODEUS_POLLING_WORKERS for both sides")
    parser.add_argument("--workspaces", type=int, default=200, help="owners the subscriptions are spread over")
    parser.add_argument("--overhead-subscriptions", type=int, default=20_000,
                        help="subscriptions at interval 1 s (overhead, bookkeeping, memory)")
    parser.add_argument("--bk-tasks", type=int, default=10, help="bookkeeping loops (= connections)")
    parser.add_argument("--bk-batch", type=int, default=10, help="subscriptions per claim in the bookkeeping loops")
    parser.add_argument("--capacity", type=float, help="polls/s to take as capacity for lag (default: overhead's)")
    parser.add_argument("--lag-subscriptions", type=int, default=100_000)
    parser.add_argument("--lag-window", type=float, default=60.0)
    parser.add_argument("--overload-window", type=float, default=20.0)
    parser.add_argument("--claim-iterations", type=int, default=620)
    parser.add_argument("--claim-every", type=float, default=0.05)
    parser.add_argument("--claim-due-rate", type=float, default=1000.0, help="subscriptions due per second")
    parser.add_argument("--sqlite-subscriptions", type=int, default=2_000)
    parser.add_argument("--memory-polls", type=int, default=100_000)
    parser.add_argument("--memory-marks", type=lambda s: [int(x) for x in s.split(",") if x],
                        default=[10_000, 25_000, 50_000, 75_000])
    parser.add_argument("--logs", default=None, help="directory for the processes' logs (default: a temporary one)")
    parser.add_argument("--json", help="also write every figure to this file")
    parser.add_argument("--_raw-sandbox", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._raw_sandbox:
        asyncio.run(raw_sandbox(args.concurrency, args.warmup, args.window))
        return
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    from odeus_triggers.secretbox import generate_key

    KEY = KEY or generate_key()
    args.logs = args.logs or tempfile.mkdtemp(prefix="odeus-bench-scheduler-")
    Path(args.logs).mkdir(parents=True, exist_ok=True)
    log(f"process logs in {args.logs}")
    print(f"{os.cpu_count()} cores; load average before: {os.getloadavg()[0]:.2f}")
    results: dict[str, Any] = {}
    made = build_template(args) if set(parts) - {"sqlite"} else {}
    for part in PARTS:
        if part not in parts:
            continue
        if part == "sqlite":
            bench_sqlite(args, results)
        else:
            globals()[f"bench_{part}"](args, made, results)
        sys.stdout.flush()
    for db in (DB, TEMPLATE):
        psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
