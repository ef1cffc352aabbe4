"""A private Postgres cluster in a temporary directory, which a test may stop and start at will.

It listens on 127.0.0.1 and on a Unix socket inside its own directory, on a free port, so the
shared server on 5432 is never touched.
"""

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    # Debian and Ubuntu keep the server binaries off PATH.
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version_key)
    return candidates[-1] if candidates else None


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parts[-3]
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThrowawayPostgres:
    def __init__(self) -> None:
        initdb, pg_ctl = find_binary("initdb"), find_binary("pg_ctl")
        if not (initdb and pg_ctl):
            raise FileNotFoundError("initdb/pg_ctl not found")
        self._initdb, self._pg_ctl = initdb, pg_ctl
        # Not pytest's tmp_path: it is private to root, and the server must run as `postgres`.
        self.root = Path(tempfile.mkdtemp(prefix="odeus-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._as_postgres = os.geteuid() == 0  # Postgres refuses to run as root.
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = ["runuser", "-u", "postgres", "--", *args] if self._as_postgres else list(args)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {result.stdout}{result.stderr}{self.server_log()}")

    def server_log(self) -> str:
        log = self.root / "server.log"
        return log.read_text(errors="replace")[-4000:] if log.exists() else ""

    def init(self) -> None:
        self._run(self._initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c full_page_writes=off")
        self._run(self._pg_ctl, "-D", str(self.data), "-l", str(self.root / "server.log"),
                  "-o", options, "-w", "-t", "60", "start")

    def stop(self, mode: str = "immediate") -> None:
        self._run(self._pg_ctl, "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def _processes(self) -> list[int]:
        """The postmaster and its children (backends, checkpointer, ...), read from /proc."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == postmaster:
                children.append(int(stat.parent.name))
        return [postmaster, *children]

    def freeze(self) -> None:
        """Every server process stops dead, sockets open: a hung or partitioned server, not a down one."""
        for pid in self._processes():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self._processes():
            os.kill(pid, signal.SIGCONT)

    def destroy(self) -> None:
        """Stops the server if it runs, and removes its directory; safe to call more than once."""
        if (self.data / "postmaster.pid").exists():
            try:
                self.thaw()  # a frozen server would ignore the stop
            except (OSError, ValueError):
                pass
            try:
                self.stop()
            except Exception:
                pass
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def running_cluster() -> Iterator[ThrowawayPostgres]:
    """A started throwaway cluster, removed afterwards; fails under CI (skips elsewhere) when
    Postgres's binaries are missing."""
    if find_binary("initdb") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("initdb is not installed: a test that stops Postgres cannot run under CI")
        pytest.skip("initdb is not installed (apt-get install -y postgresql)")
    cluster = ThrowawayPostgres()
    assert cluster.port != 5432
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()
