"""Benchmark: subscription creates/s next to trigger creates/s, against one service, in one run.

    .venv/bin/python bench/subscription_creates.py [--rounds 2] [--duration 10] [--connections 32]

It starts the service on the local Postgres (a fresh database, 1 worker, rate limits out of the
way), creates one pollable trigger, then drives the same service with wrk, alternating rounds of
Create Trigger (`../shared/bench/create.lua`, a unique name per request) and Create Subscription
(`subscription_create.lua`: one secret, a webhook at a public IP literal, so no DNS lookup), at the
same concurrency and duration, and prints the medians and the ratio subscriptions/triggers.
Both creates cost one round trip to Postgres when warm, so the ratio says what the rest of each
path costs. It is not a test, and CI does not run it.
"""

import argparse
import json
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

# bench/run.py's helpers: the same database, process and result handling as the main benchmark.
from run import BIN, PG, RESULT, ROOT, SHARED_BENCH, free_port, median_of, psql, start, stop, wait_http

from odeus_triggers.secretbox import generate_key

DB = "odeus_bench_subscriptions"
HERE = Path(__file__).resolve().parent
TRIGGER = {
    "name": "Bench Poller",
    "pollingCode": "const r = await fetch('https://api.example.com/issues?since=' + lastPollTime); "
                   "return (await r.json()).map(i => ({id: i.id}));",
    "inputFields": [
        {"label": "Project ID", "type": "TEXT", "required": True},
        {"label": "Priority Filter", "type": "SELECT", "required": False,
         "options": [{"label": "All", "value": "all"}, {"label": "High", "value": "high"}]},
    ],
}


def post(url: str, key: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {key}",
    })
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(json.load(response))


def wrk(url: str, script: Path, env: dict[str, str], duration: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url],
        env={**os.environ, **env}, capture_output=True, text=True, check=True,
    ).stdout
    m = RESULT.search(out)
    if not m:
        raise SystemExit(f"bench: no RESULT line from wrk:\n{out}")
    rps, p50, p99, errors = m.groups()
    return {"rps": float(rps), "p50": float(p50), "p99": float(p99), "errors": int(errors)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("bench: wrk is missing (apt-get install wrk)")

    psql(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    psql(f'CREATE DATABASE "{DB}"')
    env = {**os.environ, "DATABASE_URL": f"postgresql+asyncpg://{PG['user']}@{PG['host']}:{PG['port']}/{DB}",
           "ODEUS_RATE_LIMIT": "100000000/minute", "ODEUS_RATE_LIMIT_UNAUTHENTICATED": "100000000/minute",
           "ODEUS_LOG_LEVEL": "WARNING"}
    # Postgres requires a keyring (subscriptions seal their secrets); a throwaway one for a throwaway database.
    env.setdefault("ODEUS_ENCRYPTION_KEYS", generate_key())
    env.pop("REDIS_URL", None)
    subprocess.run([str(BIN / "odeus-triggers"), "migrate"], env=env, check=True, capture_output=True)
    boot = json.loads(subprocess.run([str(BIN / "odeus-triggers"), "bootstrap", "--workspace", "bench", "--json"],
                                     env=env, check=True, capture_output=True, text=True).stdout)

    port = free_port()
    service = start([str(BIN / "odeus-triggers"), "serve", "--port", str(port), "--workers", "1"], env, ROOT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/openapi.json")
        integration = f"/integrations/v1/{boot['integrationId']}"
        trigger = post(f"{base}{integration}/triggers/create", boot["apiKey"], TRIGGER)["trigger"]
        slugs = [f["slug"] for f in trigger["inputFields"]]
        inputs = json.dumps({slugs[0]: "proj_123", slugs[1]: "high"}, separators=(",", ":"))
        targets = {
            "triggers": (SHARED_BENCH / "create.lua",
                         {"WRK_PATH": f"{integration}/triggers/create", "WRK_KEY": boot["apiKey"]}),
            "subscriptions": (HERE / "subscription_create.lua",
                              {"WRK_PATH": f"{integration}/triggers/{trigger['id']}/subscriptions",
                               "WRK_KEY": boot["apiKey"], "WRK_INPUTS": inputs}),
        }
        for script, wrk_env in targets.values():
            wrk(base, script, wrk_env, args.warmup, args.connections)
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
        for _ in range(args.rounds):
            for name, (script, wrk_env) in targets.items():
                runs[name].append(wrk(base, script, wrk_env, args.duration, args.connections))
        results = {name: median_of(r) for name, r in runs.items()}
    finally:
        stop(service)

    print(f"\n{os.cpu_count()} cores, 1 worker, wrk -t1 -c{args.connections}, "
          f"{args.rounds} alternating rounds of {args.duration} s (median)")
    print(f"{'creates':<15}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>10}")
    for name, r in results.items():
        print(f"{name:<15}{r['rps']:>10.0f}{r['p50']:>10.2f}{r['p99']:>10.2f}{r['errors']:>10.0f}")
    print(f"ratio subscriptions/triggers = {results['subscriptions']['rps'] / results['triggers']['rps']:.2f}")


if __name__ == "__main__":
    main()
