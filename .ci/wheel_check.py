"""The wheel as an operator gets it: built, installed in a fresh venv, run outside the checkout.

Usage: python .ci/wheel_check.py   (stdlib only; exits non-zero on the first failure)

From an empty directory, on Postgres (a fresh database, dropped afterwards) and on SQLite:
`odeus-triggers migrate`, `odeus-triggers serve` on a free port, `bootstrap --json`, one Create
Trigger that must answer 201. A decoy migrations/ folder in the working directory must be ignored.
WHEEL_CHECK_POSTGRES_URL names the server's admin database (default: the local one on 5432).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = os.environ.get("WHEEL_CHECK_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRED = ["odeus_triggers/py.typed", "odeus_triggers/db/migrations/env.py",
            "odeus_triggers/db/migrations/script.py.mako"]


def say(message: str) -> None:
    print(f"wheel_check: {message}", flush=True)


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    result = subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=900)
    if result.returncode != 0:
        raise SystemExit(f"wheel_check: FAILED: {' '.join(args[:3])}…\n{result.stdout}{result.stderr}")
    return result.stdout


def build_and_install(work: Path) -> Path:
    dist = work / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(ROOT))
    [wheel] = dist.glob("odeus_triggers-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [n for n in REQUIRED if n not in names]
    if missing or not any(n.startswith("odeus_triggers/db/migrations/versions/") for n in names):
        raise SystemExit(f"wheel_check: FAILED: {wheel.name} lacks {missing or 'the migration versions'}")
    say(f"built {wheel.name} ({len(names)} files, migrations included)")
    venv = work / "venv"
    run(sys.executable, "-m", "venv", str(venv))
    run(str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel))
    say("installed into a fresh virtual environment")
    return venv / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: dict | None = None, key: str | None = None) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def exercise(bin_dir: Path, database_url: str, label: str, work: Path) -> None:
    cli = str(bin_dir / "odeus-triggers")
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "VIRTUAL_ENV", "PYTHONPATH") and not k.startswith("ODEUS_")}
    env["DATABASE_URL"] = database_url
    # The old fallback ran ./migrations/env.py of whatever project the operator stood in.
    decoy = Path(tempfile.mkdtemp(dir=work, prefix="decoy-"))
    (decoy / "migrations").mkdir()
    (decoy / "migrations" / "env.py").write_text("raise SystemExit(0)\n")
    (decoy / "migrations" / "script.py.mako").write_text("")
    out = run(cli, "migrate", env=env, cwd=decoy)
    if "upgraded" not in out:
        raise SystemExit(f"wheel_check: FAILED: {label}: migrate did not upgrade a fresh database: {out}")
    say(f"{label}: migrate from a directory with a decoy migrations/: {out.strip()}")

    empty = Path(tempfile.mkdtemp(dir=work, prefix="empty-"))
    if not database_url.startswith("sqlite"):
        # Serve refuses Postgres without a keyring; SQLite makes its own key file beside the database.
        env["ODEUS_ENCRYPTION_KEYS"] = run(cli, "secrets", "generate-key", env=env, cwd=empty).strip()
        say(f"{label}: secrets generate-key gave a keyring")
    port = free_port()
    server = subprocess.Popen([cli, "serve", "--port", str(port)], cwd=empty, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if http("GET", f"http://127.0.0.1:{port}/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"wheel_check: FAILED: {label}: serve never answered\n{server.communicate()[0]}")
            time.sleep(0.2)
        created = json.loads(run(cli, "bootstrap", "--json", env=env, cwd=empty))
        status, body = http("POST", f"http://127.0.0.1:{port}/integrations/v1/{created['integrationId']}"
                            "/triggers/create", {"name": "Wheel check"}, created["apiKey"])
        if status != 201:
            raise SystemExit(f"wheel_check: FAILED: {label}: Create Trigger answered {status}: {body}")
        say(f"{label}: serve from an empty directory answered Create Trigger with 201")
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    if os.listdir(empty):
        raise SystemExit(f"wheel_check: FAILED: {label}: files appeared in the working directory: {os.listdir(empty)}")


def psql(*statements: str) -> None:
    for statement in statements:
        run("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", ADMIN_URL, "-c", statement)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="odeus-wheel-"))
    try:
        bin_dir = build_and_install(work)
        exercise(bin_dir, f"sqlite+aiosqlite:///{work / 'wheel-check.db'}", "SQLite", work)
        name = f"odeus_wheel_{uuid.uuid4().hex[:10]}"
        psql(f'CREATE DATABASE "{name}"')
        try:
            base, _, _ = ADMIN_URL.rpartition("/")
            exercise(bin_dir, f"{base}/{name}", "Postgres", work)
        finally:
            psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        say("passed")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
