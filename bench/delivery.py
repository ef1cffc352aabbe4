"""Benchmark: delivery (the delivery issue, "Benchmarks"): throughput, latency, end to end.

    .venv/bin/python bench/delivery.py [--only throughput,latency,e2e] [--rounds 8] [--profile]

One sink process (bench/delivery_peers.py: asyncio on uvloop, `204` at once on keep-alive
connections) listens on 127.0.0.1 … 127.0.0.N, one port. Every part starts from a fresh Postgres
database cloned from a template built once: migrated, bootstrapped, one trigger and one
subscription created through the running service's API. Subscriptions for a part are copies of
that row by INSERT … SELECT, each with its own signing secret sealed to its own id with the run's
throwaway key (`Keyring.seal(secret, signing_context(id))`, as `subscriptions/service.py` does),
its webhook on one of the sink's hosts, and status `paused` (no polling; paused subscriptions are
still delivered). Workers run with `ODEUS_DELIVERY_ALLOW_PRIVATE_NETWORK=true` and the default
`ODEUS_DELIVERY_CONCURRENCY` (50) and `ODEUS_DELIVERY_PER_HOST` (10).

- throughput: one `odeus-triggers worker` draining a pre-filled outbox (`--events` pending rows,
  INSERT … SELECT, due now, over `--subscriptions` subscriptions round-robin over the hosts):
  against a raw loop in its own process (`delivery.sender.send` through `PinnedTransport`,
  unsigned, the same body size, at the worker's concurrency: min(50, 10 × hosts), spread over the
  same hosts). Both are started once and warmed up, then SIGSTOPped and SIGCONTinued in turn:
  `--rounds` rounds of one `--window` each, the order swapped every round, the sink's POST count
  as the measure of both; medians. With `--hosts` hosts (the global limit) and with one host (the
  per-host share). References, once: a plain `httpx.AsyncClient` loop, and a bare socket client on
  uvloop (what the sink alone takes). Goal: ratio ≥ 0.6 and ≥ 500/s.
- latency: pending rows inserted by a producer at half the measured multi-host throughput (a
  statement every 20 ms, each its own commit; the commit time is taken when the statement
  returns), with the worker running; p50/p99 of the first attempt's `attempted_at` minus that
  commit time, and of `delivered_at` (the group commit) minus it. Goal p99 ≤ 1 s.
- e2e: `--e2e-subscriptions` subscriptions, created through the API, at `intervalSeconds` 1, whose
  trigger fetches the sink's `/items` (a new item every 1/`--e2e-rate` s, with its creation time);
  the sink records each delivery's arrival. p50/p99 of arrival − creation over a window.

Figures in docs/benchmark.md, "Delivery". It is not a test, and CI does not run it.
"""

import argparse
import asyncio
import base64
import json
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

# The helpers of bench/run.py and bench/scheduler.py: the same database and process handling.
from run import BIN, PG, ROOT, free_port, psql, stop, wait_http
from scheduler import children, cli, cpu_s, log, post, postgres_pids, spawn, url_of

TEMPLATE = "odeus_bench_delivery_template"
DB = "odeus_bench_delivery"
HERE = Path(__file__).resolve().parent
PEERS = HERE / "delivery_peers.py"
KEY = ""
# ODEUS_DELIVERY_CONCURRENCY and ODEUS_DELIVERY_PER_HOST of the workers: --concurrency, --per-host.
WORKER_ENV: dict[str, str] = {}
DELIVERIES = re.compile(r'^odeus_deliveries_total\{outcome="([^"]+)"\} ([\d.e+]+)$', re.M)
E2E_CODE = """const response = await fetch("http://127.0.0.1:{port}/items");
return await response.json();"""


def env_of(db: str) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": url_of(db), "ODEUS_ENCRYPTION_KEYS": KEY,
           "ODEUS_RATE_LIMIT": "100000000/minute", "ODEUS_RATE_LIMIT_UNAUTHENTICATED": "100000000/minute",
           "ODEUS_LOG_LEVEL": "WARNING", "ODEUS_MIN_INTERVAL_SECONDS": "1",
           "ODEUS_DELIVERY_ALLOW_PRIVATE_NETWORK": "true", "ODEUS_POLLING_ALLOW_PRIVATE_NETWORK": "true"}
    env.pop("REDIS_URL", None)
    return {**env, **WORKER_ENV}


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[round(q * (len(ordered) - 1))] if ordered else float("nan")


# ------------------------------------------------------------------------------------ the sink

class SinkProc:
    def __init__(self, hosts: int, logs: Path) -> None:
        self.port = free_port()
        self.hosts = hosts
        out = open(logs / "sink.log", "ab")  # noqa: SIM115 - the child keeps it for its whole life
        self.proc = subprocess.Popen([sys.executable, str(PEERS), "sink", "--port", str(self.port), "--hosts", str(hosts)],
                                     stdout=subprocess.PIPE, stderr=out, start_new_session=True)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != b"ready":
            raise SystemExit("bench: the sink did not start")
        self.base = f"http://127.0.0.1:{self.port}"

    def url(self, host: int, path: str) -> str:
        return f"http://127.0.0.{host % self.hosts + 1}:{self.port}{path}"

    def count(self) -> int:
        return int(get_json(f"{self.base}/_count")["count"])

    def close(self) -> None:
        stop(self.proc)


# -------------------------------------------------------------------------------- the database

def build_template(logs: Path) -> dict[str, str]:
    log("building the template database (migrate, bootstrap, one trigger and subscription through the API)")
    psql(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
    psql(f'CREATE DATABASE "{TEMPLATE}"')
    env = env_of(TEMPLATE)
    cli(env, "migrate")
    boot = json.loads(cli(env, "bootstrap", "--workspace", "bench-delivery", "--json"))
    port = free_port()
    service = spawn([str(BIN / "odeus-triggers"), "serve", "--port", str(port), "--workers", "1"], env,
                    logs / "serve-template.log")
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/openapi.json", 60)
        integration = f"{base}/integrations/v1/{boot['integrationId']}"
        trigger = post(f"{integration}/triggers/create", boot["apiKey"],
                       {"name": "Bench Empty", "pollingCode": "return [];"})["trigger"]
        sub = post(f"{integration}/triggers/{trigger['id']}/subscriptions", boot["apiKey"],
                   {"inputs": {}, "webhookUrl": "http://127.0.0.1:9/template", "intervalSeconds": 60})["subscription"]
    finally:
        stop(service)
    psql(f"UPDATE subscriptions SET status = 'paused', next_poll_at = NULL WHERE id = '{sub['id']}'", TEMPLATE)
    return {"workspace": boot["workspaceId"], "integration": boot["integrationId"], "trigger": trigger["id"],
            "subscription": sub["id"], "apiKey": boot["apiKey"]}


def fresh_db() -> None:
    psql(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    psql(f'CREATE DATABASE "{DB}" TEMPLATE "{TEMPLATE}"')


def fill_subscriptions(made: dict[str, str], sink: SinkProc, n: int, hosts: int) -> list[str]:
    """`n` copies of the API-made subscription, paused, round-robin over `hosts` of the sink's
    hosts, each with its own signing secret sealed to its own id. Kept in bench_subs (i, id)."""
    from odeus_triggers.secretbox import Keyring
    from odeus_triggers.subscriptions.seal_contexts import signing_context

    keyring = Keyring([KEY.encode()])
    ids = [uuid.uuid4() for _ in range(n)]
    values = ",".join(
        f"({i}, '{sid}'::uuid, '{sink.url(i % hosts, f'/hooks/{i}')}', "
        f"'{keyring.seal('whsec_' + base64.b64encode(secrets.token_bytes(32)).decode(), signing_context(sid))}')"
        for i, sid in enumerate(ids)
    )
    cols = psql("SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns "
                "WHERE table_name = 'subscriptions'", DB).strip().split(",")
    overrides = {"id": "v.id", "webhook_url": "v.url", "signing_secret": "v.secret", "status": "'paused'",
                 "previous_signing_secret": "NULL", "previous_signing_secret_until": "NULL", "next_poll_at": "NULL",
                 "created_at": "now()", "updated_at": "now()"}
    select = ", ".join(overrides.get(c, f"s.{c}") for c in cols)
    psql(f"""
        CREATE TABLE bench_subs AS SELECT * FROM (VALUES {values}) v(i, id, url, secret);
        INSERT INTO subscriptions ({",".join(cols)})
        SELECT {select} FROM bench_subs v CROSS JOIN (SELECT * FROM subscriptions WHERE id = '{made["subscription"]}') s;
        ANALYZE subscriptions;
    """, DB)
    return [str(s) for s in ids]


def body_sql(made: dict[str, str], g: str, sub: str) -> str:
    """The stored body: the contract's shape, minified, about 330 bytes (as bench/delivery_peers.py's BODY)."""
    return (f"""'{{"type":"trigger.event","timestamp":"' || to_char(now() AT TIME ZONE 'UTC', """
            f"""'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || '","data":{{"id":"' || {g} || '","title":"Bench event ' || {g} """
            f"""|| '","priority":"high","url":"https://example.com/items/' || {g} || '"}},"trigger":{{"id":"""
            f""""{made['trigger']}","slug":"bench-empty"}},"integration":{{"id":"{made['integration']}"}},"""
            f""""subscription":{{"id":"' || {sub} || '"}}}}'""")


def fill_events(made: dict[str, str], n: int) -> None:
    """`n` pending events due now, round-robin over bench_subs (so over the hosts too), in that
    order of next_attempt_at."""
    started = time.monotonic()
    psql(f"""
        INSERT INTO trigger_events (id, subscription_id, event_key, state, body, first_seen_at, last_seen_at,
                                    attempts, next_attempt_at, lease_epoch)
        SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), s.id, 'ev-' || g, 'pending',
               {body_sql(made, 'g', 's.id')}, now(), now(), 0, now() - ({n} - g) * interval '1 microsecond', 0
        FROM generate_series(0, {n - 1}) g JOIN bench_subs s ON s.i = g % (SELECT count(*) FROM bench_subs);
    """, DB)
    psql("VACUUM ANALYZE trigger_events", DB)
    log(f"{n:,} pending events inserted in {time.monotonic() - started:.1f} s")


# -------------------------------------------------------------------------------------- worker

def start_worker(logs: Path, tag: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = spawn([str(BIN / "odeus-triggers"), "worker", "--metrics-port", str(port), "--metrics-host", "127.0.0.1"],
                 env_of(DB), logs / f"worker-{tag}.log")
    wait_http(f"http://127.0.0.1:{port}/healthz", 60)
    return proc, port


def deliveries(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return {k: float(v) for k, v in DELIVERIES.findall(r.read().decode())}


def transactions() -> int:
    return int(psql(f"SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '{DB}'"))


def cpu_now(pids: dict[str, list[int]]) -> dict[str, float]:
    return {k: cpu_s(v) for k, v in pids.items()}


def worker_round(args: argparse.Namespace, made: dict[str, str], sink: SinkProc, hosts: int, tag: str,
                 profile: Path | None = None) -> dict[str, Any]:
    fresh_db()
    fill_subscriptions(made, sink, args.subscriptions, hosts)
    fill_events(made, args.events)
    proc, port = start_worker(Path(args.logs), tag)
    try:
        began = time.monotonic()
        while deliveries(port).get("delivered", 0) == 0:
            if time.monotonic() - began > 30 or proc.poll() is not None:
                raise SystemExit(f"bench: the worker delivered nothing (see {args.logs}/worker-{tag}.log)")
            time.sleep(0.1)
        time.sleep(args.warmup)
        pids = {"worker": [proc.pid, *children(proc.pid)], "postgres": postgres_pids(), "sink": [sink.proc.pid]}
        d0, s0, x0, c0, t0 = deliveries(port), sink.count(), transactions(), cpu_now(pids), time.monotonic()
        spy = None
        window = args.profile_window if profile is not None else args.window
        if profile is not None:
            spy = subprocess.Popen(["py-spy" if not (BIN / "py-spy").exists() else str(BIN / "py-spy"), "record",
                                    "--pid", str(proc.pid), "--duration", str(int(window)), "--rate", "200",
                                    "--format", "raw", "--output", str(profile), "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(window)
        d1, s1, x1, c1, t1 = deliveries(port), sink.count(), transactions(), cpu_now(pids), time.monotonic()
        if spy is not None:
            spy.wait(timeout=60)
    finally:
        stop(proc)
    left = int(psql("SELECT count(*) FROM trigger_events WHERE state = 'pending'", DB))
    done = d1.get("delivered", 0) - d0.get("delivered", 0)
    failed = d1.get("failed", 0) - d0.get("failed", 0)
    rate = done / (t1 - t0)
    cpu = {k: (c1[k] - c0[k]) * 1000 / max(done, 1) for k in c0}
    out = {"rate": rate, "failed": failed, "sink_rate": (s1 - s0) / (t1 - t0), "left": left,
           "xacts_per_delivery": (x1 - x0) / max(done, 1), "cpu_ms": cpu}
    if left == 0:
        log(f"WARNING: {tag}: the outbox ran dry; raise --events")
    log(f"{tag}: worker {rate:.0f} delivered/s (sink saw {out['sink_rate']:.0f}/s; failed {failed:.0f}; "
        f"{out['xacts_per_delivery']:.2f} transactions per delivery; CPU ms per delivery: "
        + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items()) + f"; {left:,} still pending)")
    return out


def raw_round(args: argparse.Namespace, sink: SinkProc, hosts: int, client: str, tag: str) -> dict[str, Any]:
    concurrency = min(args.concurrency, args.per_host * hosts)
    urls = ",".join(sink.url(h, f"/raw/{h}") for h in range(hosts))
    proc = subprocess.Popen([sys.executable, str(PEERS), "raw", "--client", client, "--urls", urls, "--concurrency",
                             str(concurrency), "--warmup", str(args.raw_warmup), "--window", str(args.window)],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    c0 = cpu_s([sink.proc.pid]) + cpu_s(postgres_pids())
    out, _ = proc.communicate(timeout=args.raw_warmup + args.window + 60)
    r = json.loads(out.strip().splitlines()[-1])
    rate = r["ok"] / r["seconds"]
    result = {"rate": rate, "failed": r["failed"], "cpu_ms": {"client": r["cpu_s"] * 1000 / max(r["ok"], 1)},
              "sink_and_postgres_cpu_s": cpu_s([sink.proc.pid]) + cpu_s(postgres_pids()) - c0}
    log(f"{tag}: raw {client} loop ({concurrency} callers) {rate:.0f} POSTs/s (failed {r['failed']}; "
        f"client CPU {result['cpu_ms']['client']:.2f} ms per POST)")
    return result


def interleaved(args: argparse.Namespace, made: dict[str, str], sink: SinkProc, hosts: int, title: str) -> dict[str, Any]:
    """One worker on a pre-filled outbox and one raw loop, both started once and warmed up, then
    SIGSTOPped and SIGCONTinued in turn: windows of `--window` s each, alternately, the order
    swapped every round. The sink's count of POSTs is the measure on both sides (only one side runs
    at a time); the first `--settle` s after a resume are not counted."""
    concurrency = min(args.concurrency, args.per_host * hosts)
    fresh_db()
    fill_subscriptions(made, sink, args.subscriptions, hosts)
    fill_events(made, args.events)
    tag = f"{hosts}h"
    worker, port = start_worker(Path(args.logs), tag)
    urls = ",".join(sink.url(h, f"/raw/{h}") for h in range(hosts))
    raw = subprocess.Popen([sys.executable, str(PEERS), "raw", "--client", "pinned", "--urls", urls, "--concurrency",
                            str(concurrency), "--warmup", "0", "--window", "100000"],
                           stdout=subprocess.DEVNULL, cwd=ROOT, start_new_session=True)
    sides: dict[str, dict[str, list[float]]] = {"worker": {"rate": [], "cpu": [], "pg": []},
                                                 "raw": {"rate": [], "cpu": [], "pg": []}}
    x0 = transactions()
    try:
        os.kill(raw.pid, signal.SIGSTOP)
        began = time.monotonic()
        while deliveries(port).get("delivered", 0) == 0:
            if time.monotonic() - began > 30 or worker.poll() is not None:
                raise SystemExit(f"bench: the worker delivered nothing (see {args.logs}/worker-{tag}.log)")
            time.sleep(0.1)
        time.sleep(args.warmup)
        os.kill(worker.pid, signal.SIGSTOP)
        os.kill(raw.pid, signal.SIGCONT)
        time.sleep(args.raw_warmup)
        os.kill(raw.pid, signal.SIGSTOP)
        d0 = None
        for r in range(args.rounds):
            for name in (("worker", "raw") if r % 2 == 0 else ("raw", "worker")):
                proc = worker if name == "worker" else raw
                pids = [proc.pid]
                os.kill(proc.pid, signal.SIGCONT)
                time.sleep(args.settle)
                if name == "worker" and d0 is None:
                    d0 = deliveries(port)
                pg = postgres_pids()  # the same backends at both ends: one that exits meanwhile is lost, not negative
                c0, p0, n0, t0 = cpu_s(pids), cpu_s(pg), sink.count(), time.monotonic()
                time.sleep(args.window)
                c1, p1, n1, t1 = cpu_s(pids), cpu_s(pg), sink.count(), time.monotonic()
                os.kill(proc.pid, signal.SIGSTOP)
                n = max(n1 - n0, 1)
                sides[name]["rate"].append((n1 - n0) / (t1 - t0))
                sides[name]["cpu"].append((c1 - c0) * 1000 / n)
                sides[name]["pg"].append((p1 - p0) * 1000 / n)
            log(f"{title} round {r + 1}: worker {sides['worker']['rate'][-1]:.0f}/s "
                f"({sides['worker']['cpu'][-1]:.2f} ms CPU per delivery, Postgres {sides['worker']['pg'][-1]:.2f}), "
                f"raw {sides['raw']['rate'][-1]:.0f}/s ({sides['raw']['cpu'][-1]:.2f} ms CPU per POST); "
                f"load average {os.getloadavg()[0]:.2f}")
        os.kill(worker.pid, signal.SIGCONT)
        d1 = deliveries(port)
    finally:
        for proc in (worker, raw):
            try:
                os.kill(proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        stop(raw)
        stop(worker)
    delivered = d1.get("delivered", 0) - (d0 or {}).get("delivered", 0)
    failed = d1.get("failed", 0) - (d0 or {}).get("failed", 0)
    left = int(psql("SELECT count(*) FROM trigger_events WHERE state = 'pending'", DB))
    if left == 0:
        log(f"WARNING: {title}: the outbox ran dry; raise --events")
    errors = (Path(args.logs) / f"worker-{tag}.log").read_text(errors="replace").count("ERROR")
    return {"worker_all": sides["worker"]["rate"], "raw_all": sides["raw"]["rate"],
            "worker_cpu_ms": statistics.median(sides["worker"]["cpu"]),
            "postgres_cpu_ms": statistics.median(sides["worker"]["pg"]),
            "raw_cpu_ms": statistics.median(sides["raw"]["cpu"]), "concurrency": concurrency,
            "failed": failed, "error_lines": errors, "left": left,
            "xacts_per_delivery": (transactions() - x0) / max(delivered, 1)}


def bench_throughput(args: argparse.Namespace, made: dict[str, str], sink: SinkProc, results: dict[str, Any]) -> None:
    configs = [(args.hosts, f"{args.hosts} hosts"), (1, "1 host")] if args.hosts > 1 else [(1, "1 host")]
    results["throughput"] = {}
    for hosts, title in configs:
        res = interleaved(args, made, sink, hosts, title)
        refs = {}
        if hosts == args.hosts and not args.skip_references:
            refs = {c: raw_round(args, sink, hosts, c, f"{title} reference")["rate"] for c in ("httpx", "socket")}
        w, rw = statistics.median(res["worker_all"]), statistics.median(res["raw_all"])
        res.update(worker=w, raw=rw, ratio=w / rw, references=refs,
                   ratios=[a / b for a, b in zip(res["worker_all"], res["raw_all"], strict=True)])
        concurrency = res["concurrency"]
        results["throughput"][title] = res
        print(f"\nThroughput, {title} ({concurrency} in flight: ODEUS_DELIVERY_CONCURRENCY {args.concurrency}, "
              f"PER_HOST {args.per_host}; {args.rounds} alternating rounds of {args.window:.0f} s windows, medians; "
              f"load average {os.getloadavg()[0]:.2f})")
        print(f"  worker, signed deliveries   {w:8.0f}/s   rounds: {', '.join(f'{x:.0f}' for x in res['worker_all'])}")
        print(f"  raw loop, PinnedTransport   {rw:8.0f}/s   rounds: {', '.join(f'{x:.0f}' for x in res['raw_all'])}")
        print(f"  CPU ms per delivery: worker process {res['worker_cpu_ms']:.2f}, Postgres {res['postgres_cpu_ms']:.2f} "
              f"(all of the server's backends); raw loop {res['raw_cpu_ms']:.2f} per POST; "
              f"{res['xacts_per_delivery']:.2f} transactions per delivery")
        for client, rate in refs.items():
            print(f"  reference, {client:<6} loop      {rate:8.0f}/s")
        print(f"  ratio worker / raw = {res['ratio']:.2f} (per round: {', '.join(f'{x:.2f}' for x in res['ratios'])})   "
              f"(goal >= 0.6; and >= 500/s: {'met' if w >= 500 else 'missed'}); failed attempts {res['failed']:.0f}, "
              f"ERROR lines in the worker's log {res['error_lines']}")
        sys.stdout.flush()
    if args.profile:
        for hosts, title in configs:
            path = Path(args.logs) / f"worker-profile-{hosts}h.txt"
            log(f"profiling one more worker round, {title}, with py-spy (collapsed stacks in {path})")
            worker_round(args, made, sink, hosts, f"profile-{hosts}h", profile=path)
            print_profile(path, title)


# Where a sample of the worker goes, by the first rule that one of its frames matches (py-spy's
# non-blocking samples can be cut short, so a rule looks at every frame, not at the root).
BUCKETS = (
    ("signing (secretbox.open of the secrets, standardwebhooks, redaction)",
     ("delivery/signing.py", "standardwebhooks", "secretbox.py", "cryptography", "ops/redaction.py")),
    ("database: claim, release, group-committed writes (SQLAlchemy + asyncpg)",
     ("sqlalchemy", "asyncpg", "delivery/outbox.py", "runtime/group_commit.py")),
    ("HTTP: sender.send, PinnedTransport, httpx, httpcore, h11, anyio (what the raw loop runs)",
     ("delivery/sender.py", "egress/transport.py", "httpx", "httpcore", "h11", "anyio", "egress/addresses.py")),
    ("lease loop and dispatcher, their own code (tasks, shares, metrics)",
     ("runtime/lease_loop.py", "runtime/dispatcher.py", "runtime/metrics.py", "prometheus_client")),
    ("event loop (select, callbacks) and the rest", ("",)),
)


def print_profile(path: Path, title: str) -> None:
    if not path.exists():
        print("  (py-spy wrote no profile)")
        return
    total = 0
    buckets: dict[str, int] = {}
    leaf: dict[str, int] = {}
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        count = int(n)
        total += count
        name = next(b for b, marks in BUCKETS if any(m in stack for m in marks))
        buckets[name] = buckets.get(name, 0) + count
        frame = re.sub(r" \(.*/(site-packages|lib/python3\.\d+|src)/", " (", stack.split(";")[-1])
        leaf[frame] = leaf.get(frame, 0) + count
    print(f"\nProfile of the worker, {title} (py-spy --nonblocking at 200 Hz: {total} samples while not idle, "
          "waiting for a CPU included)")
    for name, _ in BUCKETS:
        print(f"  {100 * buckets.get(name, 0) / max(total, 1):5.1f} %  {name}")
    print("  top leaf frames:")
    for frame, count in sorted(leaf.items(), key=lambda x: -x[1])[:8]:
        print(f"  {100 * count / total:5.1f} %  {frame}")


# ------------------------------------------------------------------------------------- latency

async def produce(rate: float, duration: float, sub_ids: list[str], made: dict[str, str]) -> dict[str, float]:
    import asyncpg

    conn = await asyncpg.connect(f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{DB}")
    insert = await conn.prepare(f"""
        INSERT INTO trigger_events (id, subscription_id, event_key, state, body, first_seen_at, last_seen_at,
                                    attempts, next_attempt_at, lease_epoch)
        SELECT x.id, x.sub, x.id, 'pending', {body_sql(made, 'x.id', 'x.sub::text')}, now(), now(), 0, now(), 0
        FROM unnest($1::text[], $2::uuid[]) x(id, sub)""")
    committed: dict[str, float] = {}
    tick, owed, n = 0.02, 0.0, 0
    start = time.monotonic()
    next_tick = start
    while time.monotonic() - start < duration:
        owed += rate * tick
        k = int(owed)
        owed -= k
        if k:
            ids = [f"msg_{uuid.uuid4().hex}" for _ in range(k)]
            subs = [uuid.UUID(sub_ids[(n + j) % len(sub_ids)]) for j in range(k)]
            n += k
            await insert.fetch(ids, subs)
            at = time.time()  # autocommit: the statement's commit is done when it returns
            committed.update((i, at) for i in ids)
        next_tick += tick
        await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
    await conn.close()
    return committed


def latency_at(args: argparse.Namespace, made: dict[str, str], sink: SinkProc, rate: float) -> dict[str, Any]:
    fresh_db()
    sub_ids = fill_subscriptions(made, sink, args.subscriptions, args.hosts)
    proc, port = start_worker(Path(args.logs), f"latency-{rate:.0f}")
    try:
        time.sleep(2)
        pids = {"worker": [proc.pid], "postgres": postgres_pids(), "bench (producer)": [os.getpid()]}
        c0 = cpu_now(pids)
        began = time.monotonic()
        committed = asyncio.run(produce(rate, args.latency_window, sub_ids, made))
        elapsed, c1 = time.monotonic() - began, cpu_now(pids)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and int(psql("SELECT count(*) FROM trigger_events WHERE state = 'pending'", DB)):
            time.sleep(0.5)
    finally:
        stop(proc)
    # lease_epoch counts the claims of an event: more than one means it was given back unsent (over its
    # host's share, OVER_SHARE_WAIT_S) before the claim that sent it.
    rows = psql("""SELECT e.id, extract(epoch FROM min(a.attempted_at)), extract(epoch FROM e.delivered_at), e.lease_epoch
                   FROM trigger_events e JOIN delivery_attempts a ON a.event_id = e.id GROUP BY e.id""", DB)
    start = min(committed.values())
    skip_until = start + args.latency_skip
    first, delivered = [], []
    thirds: list[list[float]] = [[], [], []]
    span = (args.latency_window - args.latency_skip) / 3
    once, again = [], []
    for line in rows.strip().splitlines():
        eid, attempted, done, epoch = line.split("|")
        at = committed.get(eid)
        if at is None or at < skip_until:
            continue
        first.append(float(attempted) - at)
        (once if int(epoch) <= 1 else again).append(float(attempted) - at)
        thirds[min(2, int((at - skip_until) / span))].append(float(attempted) - at)
        if done:
            delivered.append(float(done) - at)
    counted = sum(1 for at in committed.values() if at >= skip_until)
    cpu = {k: (c1[k] - c0[k]) / elapsed for k in c0}
    return {"rate": rate, "achieved": len(committed) / elapsed, "events": counted, "attempted": len(first),
            "first_p50": pct(first, 0.5), "first_p99": pct(first, 0.99), "first_max": max(first, default=float("nan")),
            "delivered_p50": pct(delivered, 0.5), "delivered_p99": pct(delivered, 0.99),
            "thirds_p99": [pct(t, 0.99) for t in thirds], "cpu_cores": cpu, "load": os.getloadavg()[0],
            "claimed_once": len(once), "claimed_again": len(again), "once_p50": pct(once, 0.5), "once_p99": pct(once, 0.99),
            "again_p50": pct(again, 0.5), "again_p99": pct(again, 0.99)}


def bench_latency(args: argparse.Namespace, made: dict[str, str], sink: SinkProc, results: dict[str, Any]) -> None:
    capacity = args.capacity or results.get("throughput", {}).get(f"{args.hosts} hosts", {}).get("worker")
    if not capacity:
        raise SystemExit("bench: latency needs --capacity (deliveries/s) or the throughput part in the same run")
    results["latency"] = {}
    for fraction in args.latency_fractions:
        res = latency_at(args, made, sink, capacity * fraction)
        results["latency"][f"{fraction:g}"] = res
        print(f"\nLatency at {fraction:.0%} of the throughput ({res['rate']:.0f} events/s of {capacity:.0f}/s, achieved "
              f"{res['achieved']:.0f}/s, committed every 20 ms over {args.hosts} hosts, {args.latency_window:.0f} s, the "
              f"first {args.latency_skip:.0f} s not counted; load average {res['load']:.2f})")
        print(f"  {res['events']:,} events, {res['attempted']:,} attempted: commit -> first attempt p50 "
              f"{res['first_p50'] * 1000:.0f} ms, p99 {res['first_p99'] * 1000:.0f} ms, max {res['first_max'] * 1000:.0f} ms"
              f"   (goal p99 <= 1000 ms); p99 by thirds of the window: "
              + ", ".join(f"{x * 1000:.0f}" for x in res["thirds_p99"]) + " ms")
        print(f"  commit -> delivered_at (the attempt's group commit) p50 {res['delivered_p50'] * 1000:.0f} ms, "
              f"p99 {res['delivered_p99'] * 1000:.0f} ms; CPU cores used: "
              + ", ".join(f"{k} {v:.2f}" for k, v in res["cpu_cores"].items()))
        print(f"  sent at their first claim: {res['claimed_once']:,} (p50 {res['once_p50'] * 1000:.0f} ms, p99 "
              f"{res['once_p99'] * 1000:.0f} ms); given back over their host's share first: {res['claimed_again']:,} "
              f"(p50 {res['again_p50'] * 1000:.0f} ms, p99 {res['again_p99'] * 1000:.0f} ms)")
        sys.stdout.flush()


# ------------------------------------------------------------------------------------------ e2e

def bench_e2e(args: argparse.Namespace, made: dict[str, str], sink: SinkProc, results: dict[str, Any]) -> None:
    fresh_db()
    env = env_of(DB)
    port = free_port()
    service = spawn([str(BIN / "odeus-triggers"), "serve", "--port", str(port), "--workers", "1"], env,
                    Path(args.logs) / "serve-e2e.log")
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/openapi.json", 60)
        integration = f"{base}/integrations/v1/{made['integration']}"
        trigger = post(f"{integration}/triggers/create", made["apiKey"],
                       {"name": "Bench Feed", "pollingCode": E2E_CODE.format(port=sink.port)})["trigger"]
        for i in range(args.e2e_subscriptions):
            post(f"{integration}/triggers/{trigger['id']}/subscriptions", made["apiKey"],
                 {"inputs": {}, "webhookUrl": sink.url(i % args.hosts, f"/e2e/{i}"), "intervalSeconds": 1})
    finally:
        stop(service)
    get_json(f"{sink.base}/_feed?rate={args.e2e_rate}&keep={args.e2e_keep}")
    proc, _ = start_worker(Path(args.logs), "e2e")
    try:
        deadline = time.monotonic() + 60
        while int(psql(f"SELECT count(*) FROM subscriptions WHERE trigger_id = '{trigger['id']}' AND seeded_at IS NULL",
                       DB)):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"bench: e2e subscriptions did not seed (see {args.logs}/worker-e2e.log)")
            time.sleep(0.2)
        get_json(f"{sink.base}/_record?on=1")
        time.sleep(1)
        since = time.time()
        time.sleep(args.e2e_window)
        until = time.time()
        time.sleep(3)  # the last items' polls and deliveries
        get_json(f"{sink.base}/_record?on=0")
        records = get_json(f"{sink.base}/_dump")
        polls = psql("SELECT outcome || '=' || count(*) FROM poll_runs GROUP BY outcome", DB).split()
    finally:
        stop(proc)
    # Where the time goes: the poll that found the item (its start is the event's first_seen_at),
    # and the first attempt.
    times = {}
    for line in psql("""SELECT e.id, extract(epoch FROM e.first_seen_at), extract(epoch FROM min(a.attempted_at))
                        FROM trigger_events e JOIN delivery_attempts a ON a.event_id = e.id GROUP BY e.id""",
                     DB).strip().splitlines():
        eid, seen_at, attempted = line.split("|")
        times[eid] = (float(seen_at), float(attempted))
    periods = [float(x) for x in psql(f"""
        SELECT extract(epoch FROM started_at - lag(started_at) OVER (PARTITION BY subscription_id ORDER BY started_at))
        FROM poll_runs WHERE started_at >= to_timestamp({since})""", DB).split()]
    latencies, seen, to_poll, to_attempt, to_arrival = [], set(), [], [], []
    for r in records:
        data = json.loads(r["body"])["data"]
        key = (r["id"], data["id"])
        if key in seen or not since <= data["created"] < until:
            continue
        seen.add(key)
        latencies.append(r["at"] - data["created"])
        if r["id"] in times:
            seen_at, attempted = times[r["id"]]
            to_poll.append(seen_at - data["created"])
            to_attempt.append(attempted - seen_at)
            to_arrival.append(r["at"] - attempted)
    expected = args.e2e_subscriptions * round((until - since) * args.e2e_rate)
    res = {"subscriptions": args.e2e_subscriptions, "deliveries": len(latencies), "expected": expected,
           "p50": pct(latencies, 0.5), "p99": pct(latencies, 0.99), "max": max(latencies, default=float("nan")),
           "polls": polls, "poll_period_p50": pct(periods, 0.5), "poll_period_p99": pct(periods, 0.99),
           "steps": {name: {"p50": pct(v, 0.5), "p99": pct(v, 0.99)} for name, v in
                     (("created_to_poll_start", to_poll), ("poll_start_to_first_attempt", to_attempt),
                      ("first_attempt_to_arrival", to_arrival))}}
    results["e2e"] = res
    print(f"\nEnd to end ({args.e2e_subscriptions} subscriptions at intervalSeconds 1 polling a loopback feed with a new "
          f"item every {1000 / args.e2e_rate:.0f} ms; {args.e2e_window:.0f} s of items; one worker; load average "
          f"{os.getloadavg()[0]:.2f})")
    print(f"  {len(latencies):,} deliveries of about {expected:,} (items x subscriptions): item created -> "
          f"arrival at the sink p50 {res['p50'] * 1000:.0f} ms, p99 {res['p99'] * 1000:.0f} ms, "
          f"max {res['max'] * 1000:.0f} ms; polls: {' '.join(polls)}")
    print("  steps (p50 / p99 ms): " + "; ".join(
        f"{name.replace('_', ' ')} {v['p50'] * 1000:.0f} / {v['p99'] * 1000:.0f}" for name, v in res["steps"].items())
        + f"; time between a subscription's poll starts {res['poll_period_p50'] * 1000:.0f} / "
          f"{res['poll_period_p99'] * 1000:.0f}")


# ------------------------------------------------------------------------------------------ main

def source_state() -> str:
    """The code measured: the commit, and how many files under src/ differ from it (read-only git)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "source: not a git checkout"
    return f"source: {head}" + (f" with {len(dirty)} changed files under src/" if dirty else "")


PARTS = ("throughput", "latency", "e2e")


def main() -> None:
    global KEY
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts: {', '.join(PARTS)}")
    parser.add_argument("--rounds", type=int, default=8, help="alternating rounds per throughput configuration")
    # A side is stopped for --window + --settle seconds: keep that under the worker's 5 s asyncpg
    # command_timeout (ODEUS_DB_STATEMENT_TIMEOUT_SECONDS), or a statement in flight at the SIGSTOP
    # times out on the resume.
    parser.add_argument("--window", type=float, default=3.0, help="seconds counted per side and round")
    parser.add_argument("--settle", type=float, default=0.5, help="seconds after a SIGCONT before counting")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds after the first delivery before counting")
    parser.add_argument("--raw-warmup", type=float, default=2.0)
    parser.add_argument("--hosts", type=int, default=5, help="sink hosts 127.0.0.1 … 127.0.0.N")
    parser.add_argument("--concurrency", type=int, default=50, help="the workers' ODEUS_DELIVERY_CONCURRENCY")
    parser.add_argument("--per-host", type=int, default=10, help="the workers' ODEUS_DELIVERY_PER_HOST")
    parser.add_argument("--subscriptions", type=int, default=200)
    parser.add_argument("--events", type=int, default=30_000, help="pending rows per throughput round")
    parser.add_argument("--skip-references", action="store_true", help="no httpx and bare-socket reference loops")
    parser.add_argument("--profile", action="store_true", help="one more worker round under py-spy, summarised")
    parser.add_argument("--profile-window", type=float, default=10.0)
    parser.add_argument("--capacity", type=float, help="deliveries/s to take as throughput for latency")
    parser.add_argument("--latency-window", type=float, default=20.0)
    parser.add_argument("--latency-fractions", type=lambda v: [float(x) for x in v.split(",") if x], default=[0.5],
                        help="producer rates as fractions of the throughput, e.g. 0.25,0.5")
    parser.add_argument("--latency-skip", type=float, default=2.0)
    parser.add_argument("--e2e-subscriptions", type=int, default=20)
    parser.add_argument("--e2e-rate", type=float, default=2.0, help="new upstream items per second")
    parser.add_argument("--e2e-keep", type=int, default=20, help="items the feed returns (the newest)")
    parser.add_argument("--e2e-window", type=float, default=30.0)
    parser.add_argument("--logs", default=None, help="directory for the processes' logs (default: a temporary one)")
    parser.add_argument("--json", help="also write every figure to this file")
    args = parser.parse_args()
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    if set(parts) - set(PARTS):
        parser.error(f"unknown parts: {', '.join(sorted(set(parts) - set(PARTS)))}")
    from odeus_triggers.secretbox import generate_key

    KEY = os.environ.get("ODEUS_BENCH_KEY") or generate_key()
    WORKER_ENV.update(ODEUS_DELIVERY_CONCURRENCY=str(args.concurrency), ODEUS_DELIVERY_PER_HOST=str(args.per_host))
    args.logs = args.logs or tempfile.mkdtemp(prefix="odeus-bench-delivery-")
    Path(args.logs).mkdir(parents=True, exist_ok=True)
    log(f"process logs in {args.logs}")
    print(f"{os.cpu_count()} cores; load average before: {os.getloadavg()[0]:.2f}; {source_state()}")
    started = time.monotonic()
    results: dict[str, Any] = {"load_before": os.getloadavg()}
    sink = SinkProc(args.hosts, Path(args.logs))
    try:
        made = build_template(Path(args.logs))
        for part in PARTS:
            if part in parts:
                globals()[f"bench_{part}"](args, made, sink, results)
                sys.stdout.flush()
    finally:
        sink.close()
        for db in (DB, TEMPLATE):
            psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    results["load_after"] = os.getloadavg()
    print(f"\nload average after: {os.getloadavg()[0]:.2f}; {time.monotonic() - started:.0f} s in all")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
