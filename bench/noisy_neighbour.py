"""Benchmark: another tenant's create p99 while one tenant attacks the sandbox, side by side.

    .venv/bin/python bench/noisy_neighbour.py [--rounds 2] [--duration 10] [--connections 8]

It starts the service (1 API worker, the default 2 sandbox run workers and 1 check worker) on the
local Postgres, bootstraps two workspaces, and drives workspace B with wrk: creates whose polling
code is new every time, so each one waits for a real syntax check. Rounds alternate between no
attack and an attack by workspace A, which keeps 4 test runs of `while (true) {}`, one of an
uninterruptible regex and one of the forged-fetch flood in flight the whole time. It prints B's
requests/s, p50 and p99 in both conditions, and the p99 ratio. It is not a test; CI does not run it.
"""

import argparse
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from cryptography.fernet import Fernet
from run import BIN, PG, RESULT, ROOT, free_port, median_of, psql, start, stop, wait_http

DB = "odeus_bench_neighbour"
SCRIPT = Path(__file__).with_name("unique_code_create.lua")
ATTACKS = {
    "busy loop": ("while (true) {}", 4),
    "regex": ("return [{id: /^(a+)+$/.test('a'.repeat(40) + 'b')}];", 1),
    "flood": (
        "Object.prototype.toJSON = function () { if (Array.isArray(this)) return this;"
        " return {done: false, timer: null, fetches: Array.from({length: 500}, (_, i) => ({id: i + 1,"
        " url: 'https://example.com/', method: 'GET', headers: [], body: null, redirect: 'follow'}))}; };"
        " await new Promise(() => {});",
        1,
    ),
}


def call(origin: str, path: str, key: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        origin + path, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def bootstrap(env: dict[str, str], name: str) -> dict[str, str]:
    out = subprocess.run([str(BIN / "odeus-triggers"), "bootstrap", "--workspace", name, "--json"],
                         env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


class Attacker:
    """Keeps every attack's test runs in flight, each in its own thread, until stopped."""

    def __init__(self, origin: str, tenant: dict[str, str]) -> None:
        self.origin, self.tenant = origin, tenant
        self.stopped = threading.Event()
        self.runs: list[int] = []
        self.paths = []
        for name, (code, copies) in ATTACKS.items():
            status, created = call(origin, f"/integrations/v1/{tenant['integrationId']}/triggers/create",
                                   tenant["apiKey"], {"name": f"Attack {name}", "pollingCode": code})
            assert status == 201, created
            path = f"/integrations/v1/{tenant['integrationId']}/triggers/{created['trigger']['id']}/test"
            self.paths += [path] * copies
        self.threads: list[threading.Thread] = []

    def _loop(self, path: str) -> None:
        while not self.stopped.is_set():
            status, _ = call(self.origin, path, self.tenant["apiKey"], {})
            self.runs.append(status)

    def __enter__(self) -> "Attacker":
        self.stopped.clear()
        self.threads = [threading.Thread(target=self._loop, args=(p,), daemon=True) for p in self.paths]
        for t in self.threads:
            t.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        for t in self.threads:
            t.join(timeout=30)


def wrk(origin: str, path: str, key: str, duration: int, connections: int) -> dict[str, float]:
    env = {**os.environ, "WRK_PATH": path, "WRK_KEY": key}
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "30s", "-s", str(SCRIPT), origin],
                         env=env, capture_output=True, text=True, check=True).stdout
    m = RESULT.search(out)
    if not m:
        raise SystemExit(f"bench: no RESULT line from wrk:\n{out}")
    rps, p50, p99, errors = m.groups()
    return {"rps": float(rps), "p50": float(p50), "p99": float(p99), "errors": int(errors)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("bench: wrk is missing (apt-get install wrk)")
    psql(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    psql(f'CREATE DATABASE "{DB}"')
    env = {**os.environ, "DATABASE_URL": f"postgresql+asyncpg://{PG['user']}@{PG['host']}:{PG['port']}/{DB}",
           "ODEUS_RATE_LIMIT": "100000000/minute", "ODEUS_RATE_LIMIT_UNAUTHENTICATED": "100000000/minute",
           "ODEUS_LOG_LEVEL": "WARNING", "ODEUS_POLLING_TIMEOUT_SECONDS": "10"}
    env.pop("REDIS_URL", None)
    # Serve refuses Postgres without a keyring; a throwaway one is enough for a benchmark database.
    env.setdefault("ODEUS_ENCRYPTION_KEYS", Fernet.generate_key().decode())
    subprocess.run([str(BIN / "odeus-triggers"), "migrate"], env=env, check=True, capture_output=True)
    victim, attacker = bootstrap(env, "neighbour-b"), bootstrap(env, "attacker-a")
    port = free_port()
    service = start([str(BIN / "odeus-triggers"), "serve", "--port", str(port), "--workers", "1"], env, ROOT)
    origin = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{origin}/openapi.json")
        target = (origin, f"/integrations/v1/{victim['integrationId']}/triggers/create", victim["apiKey"])
        attack = Attacker(origin, attacker)
        wrk(*target, 3, args.connections)  # warm-up: workers spawned, connections pooled
        quiet, attacked = [], []
        for _ in range(args.rounds):
            quiet.append(wrk(*target, args.duration, args.connections))
            with attack:
                attacked.append(wrk(*target, args.duration, args.connections))
        q, a = median_of(quiet), median_of(attacked)
    finally:
        stop(service)
    print(f"\nworkspace B's creates (new polling code each), wrk -t1 -c{args.connections}, "
          f"{args.rounds} alternating rounds of {args.duration} s (median); {os.cpu_count()} cores")
    print(f"{'condition':<34}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}")
    for name, r in (("no attack", q), ("A attacking (6 runs in flight)", a)):
        print(f"{name:<34}{r['rps']:>9.0f}{r['p50']:>9.2f}{r['p99']:>9.2f}{r['errors']:>9.0f}")
    codes = {c: attack.runs.count(c) for c in sorted(set(attack.runs))}
    print(f"p99 under attack / p99 without = {a['p99'] / q['p99']:.2f}; A's test runs answered: {codes}")


if __name__ == "__main__":
    main()
