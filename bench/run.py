"""Benchmark: the create-trigger route against the reference ceilings, side by side in one run.

    .venv/bin/python bench/run.py [--rounds 2] [--duration 10] [--connections 32] [--skip-scale]

It starts, on the local Postgres, the service (1 worker, rate limit out of the way) and the
reference app `../shared/bench/baseline_app.py` (1 worker), drives each with wrk and
`../shared/bench/create.lua` (the seed's body, a unique name per request), alternating rounds,
and prints requests/s, p50 and p99 for the service, the bare-FastAPI ceiling and the
raw-asyncpg ceiling, and the ratio service/raw. Then it seeds 1,000,000 triggers in other
integrations and 10,000 in the benchmarked one with set-based SQL, and measures again.
It is not a test, and CI does not run it.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
SHARED_BENCH = ROOT.parent / "shared" / "bench"
PG = {"host": "127.0.0.1", "port": "5432", "user": "postgres"}
SERVICE_DB, BASELINE_DB = "odeus_bench", "bench"
BIN = Path(sys.executable).parent
RESULT = re.compile(r"RESULT rps=([\d.]+) p50_ms=([\d.]+) p99_ms=([\d.]+) errors_status=(\d+)")


def psql(sql: str, db: str = "postgres") -> str:
    return subprocess.run(
        ["psql", "-h", PG["host"], "-p", PG["port"], "-U", PG["user"], "-d", db, "-qAtc", sql],
        check=True, capture_output=True, text=True,
    ).stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            time.sleep(0.2)
    raise SystemExit(f"bench: {url} did not come up")


def start(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


def wrk(url: str, path: str, key: str, duration: int, connections: int) -> dict[str, float]:
    env = {**os.environ, "WRK_PATH": path, "WRK_KEY": key}
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(SHARED_BENCH / "create.lua"), url],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    m = RESULT.search(out)
    if not m:
        raise SystemExit(f"bench: no RESULT line from wrk:\n{out}")
    rps, p50, p99, errors = m.groups()
    return {"rps": float(rps), "p50": float(p50), "p99": float(p99), "errors": int(errors)}


def median_of(results: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in results) for k in ("rps", "p50", "p99", "errors")}


def seed_scale(integration_id: str, workspace_id: str) -> None:
    """1,000,000 triggers over 1,000 other integrations, and 10,000 in the benchmarked one."""
    psql(f"""
        INSERT INTO integrations (id, workspace_id, name, description, created_at)
        SELECT md5('bench-int-' || g)::uuid, '{workspace_id}', 'Bench ' || g, '', now()
        FROM generate_series(1, 1000) g ON CONFLICT DO NOTHING;
        INSERT INTO triggers (id, integration_id, name, slug, description, type, polling_code, created_at, updated_at)
        SELECT gen_random_uuid(), md5('bench-int-' || (g % 1000 + 1))::uuid, 'Seeded ' || g, 'seeded-' || g, '',
               'WEBHOOK', NULL, now(), now()
        FROM generate_series(1, 1000000) g;
        INSERT INTO triggers (id, integration_id, name, slug, description, type, polling_code, created_at, updated_at)
        SELECT gen_random_uuid(), '{integration_id}', 'Local ' || g, 'local-' || g, '', 'WEBHOOK', NULL, now(), now()
        FROM generate_series(1, 10000) g;
        ANALYZE;
    """, SERVICE_DB)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--skip-scale", action="store_true")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("bench: wrk is missing (apt-get install wrk)")

    for db in (SERVICE_DB, BASELINE_DB):
        psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        psql(f'CREATE DATABASE "{db}"')
    service_url = f"postgresql+asyncpg://{PG['user']}@{PG['host']}:{PG['port']}/{SERVICE_DB}"
    env = {**os.environ, "DATABASE_URL": service_url, "ODEUS_RATE_LIMIT": "100000000/minute",
           "ODEUS_RATE_LIMIT_UNAUTHENTICATED": "100000000/minute", "ODEUS_LOG_LEVEL": "WARNING"}
    env.pop("REDIS_URL", None)
    # Serve refuses Postgres without a keyring; a throwaway one is enough for a benchmark database.
    env.setdefault("ODEUS_ENCRYPTION_KEYS", Fernet.generate_key().decode())
    subprocess.run([str(BIN / "odeus-triggers"), "migrate"], env=env, check=True, capture_output=True)
    boot = json.loads(subprocess.run([str(BIN / "odeus-triggers"), "bootstrap", "--workspace", "bench", "--json"],
                                     env=env, check=True, capture_output=True, text=True).stdout)

    service_port, baseline_port = free_port(), free_port()
    service = start([str(BIN / "odeus-triggers"), "serve", "--port", str(service_port), "--workers", "1"], env, ROOT)
    baseline = start(
        [str(BIN / "uvicorn"), "baseline_app:app", "--port", str(baseline_port), "--workers", "1", "--no-access-log",
         "--log-level", "warning"],
        {**os.environ, "BENCH_DSN": f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{BASELINE_DB}"},
        SHARED_BENCH,
    )
    try:
        wait_http(f"http://127.0.0.1:{service_port}/openapi.json")
        wait_http(f"http://127.0.0.1:{baseline_port}/openapi.json")
        targets = {
            "service": (
                f"http://127.0.0.1:{service_port}", f"/integrations/v1/{boot['integrationId']}/triggers/create", boot["apiKey"]
            ),
            "bare": (f"http://127.0.0.1:{baseline_port}", f"/bare/{uuid.uuid4()}/triggers/create", ""),
            "raw": (f"http://127.0.0.1:{baseline_port}", f"/raw/{uuid.uuid4()}/triggers/create", ""),
        }

        def measure(names: list[str]) -> dict[str, dict[str, float]]:
            for name in names:
                wrk(*targets[name], args.warmup, args.connections)
            runs: dict[str, list[dict[str, float]]] = {n: [] for n in names}
            for _ in range(args.rounds):
                for name in names:
                    runs[name].append(wrk(*targets[name], args.duration, args.connections))
            return {n: median_of(r) for n, r in runs.items()}

        empty = measure(["service", "bare", "raw"])
        report("empty database", empty, args)
        if not args.skip_scale:
            print("\nseeding 1,000,000 triggers in other integrations and 10,000 in this one …", flush=True)
            t0 = time.monotonic()
            seed_scale(boot["integrationId"], boot["workspaceId"])
            print(f"seeded in {time.monotonic() - t0:.0f} s")
            scaled = measure(["service", "raw"])
            report("1,000,000 + 10,000 existing triggers", scaled, args)
            print(f"\nscale: service p50 {scaled['service']['p50']:.2f} ms vs {empty['service']['p50']:.2f} ms empty "
                  f"= {scaled['service']['p50'] / empty['service']['p50']:.2f}x (target <= 1.20x); "
                  f"rps {scaled['service']['rps'] / empty['service']['rps']:.2f}x of empty")
    finally:
        stop(service)
        stop(baseline)


def report(title: str, results: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    print(f"\n{title}: {os.cpu_count()} cores, 1 worker each, wrk -t1 -c{args.connections}, "
          f"{args.rounds} alternating rounds of {args.duration} s (median)")
    print(f"{'target':<10}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>10}")
    for name, r in results.items():
        print(f"{name:<10}{r['rps']:>10.0f}{r['p50']:>10.2f}{r['p99']:>10.2f}{r['errors']:>10.0f}")
    if "raw" in results and "service" in results:
        print(f"ratio service/raw = {results['service']['rps'] / results['raw']['rps']:.2f} (target >= 0.50)")


if __name__ == "__main__":
    main()
