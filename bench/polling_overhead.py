"""Benchmark: what a trivial test run costs through the API, sandbox included.

    .venv/bin/python bench/polling_overhead.py [--runs 200] [--database-url URL]

In process (httpx over ASGITransport, no network), on a throwaway SQLite database unless a URL is
given: it creates a workspace, a key and a trigger whose code is `return [{id: 1}]`, warms the
pool (both workers, and the spare context each prepares between jobs), then times `--runs`
sequential `POST …/triggers/{id}/test` calls and prints p50, p90, p99 and the sandbox's own
share (`durationMs`). For comparison it times the same route on a trigger without code, which
does all the same work (key, access, one query) and stops with a 400 just before the sandbox.
It is not a test, and CI does not run it.
"""

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from odeus_triggers.app import create_app
from odeus_triggers.auth import admin
from odeus_triggers.auth.scopes import Scope
from odeus_triggers.config import Settings
from odeus_triggers.db.migrate import upgrade_to_head
from odeus_triggers.integrations.service import create_integration

CODE = "return [{id: 1}]"
WARM_UP_RUNS = 20


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(database_url: str, runs: int) -> None:
    settings = Settings(
        database_url=database_url, rate_limit="1000000/minute", rate_limit_unauthenticated="1000000/minute",
        log_level="WARNING",
    )
    await upgrade_to_head(settings)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        engine = app.state.engine
        workspace = await admin.ensure_workspace(engine, "bench-polling")
        key = (await admin.create_key(engine, workspace, [Scope.INTEGRATION_API])).key
        integration = (await create_integration(engine, workspace, "Bench", ""))["id"]
        auth = {"Authorization": f"Bearer {key}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            created = await client.post(
                f"/integrations/v1/{integration}/triggers/create",
                json={"name": f"Bench {time.time_ns()}", "pollingCode": CODE},
                headers=auth,
            )
            created.raise_for_status()
            path = f"/integrations/v1/{integration}/triggers/{created.json()['trigger']['id']}/test"
            without = await client.post(
                f"/integrations/v1/{integration}/triggers/create", json={"name": f"No code {time.time_ns()}"}, headers=auth
            )
            no_code_path = f"/integrations/v1/{integration}/triggers/{without.json()['trigger']['id']}/test"
            for _ in range(WARM_UP_RUNS):
                (await client.post(path, json={}, headers=auth)).raise_for_status()
            totals, sandbox = [], []
            for _ in range(runs):
                started = time.perf_counter()
                response = await client.post(path, json={}, headers=auth)
                totals.append((time.perf_counter() - started) * 1000)
                result = response.json()
                assert result["ok"] and result["events"] == [{"id": 1}], result
                sandbox.append(result["durationMs"])
            baseline = []
            for _ in range(runs):
                started = time.perf_counter()
                response = await client.post(no_code_path, json={}, headers=auth)
                baseline.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 400, response.text
    print(f"{runs} trivial test runs through the API ({database_url.split(':', 1)[0]}):")
    print(
        f"  total   p50 {statistics.median(totals):6.1f} ms   p90 {percentile(totals, 0.9):6.1f} ms"
        f"   p99 {percentile(totals, 0.99):6.1f} ms"
    )
    print(f"  same route, no code (400 before the sandbox): p50 {statistics.median(baseline):6.1f} ms")
    print(f"  sandbox p50 {statistics.median(sandbox):6.1f} ms (durationMs: the run in the worker, as the pool sees it)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--database-url", help="default: a throwaway SQLite file")
    args = parser.parse_args()
    if args.database_url:
        asyncio.run(measure(args.database_url, args.runs))
        return
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(measure(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}", args.runs))


if __name__ == "__main__":
    main()
