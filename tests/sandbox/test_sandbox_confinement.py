"""Workers are confined by the OS, not only by QuickJS: another user, no new privileges, a seccomp
allow-list, an empty environment and no inherited descriptors.

Live workers are inspected from outside through /proc; the filter itself is exercised in
throwaway processes that apply the worker's confinement (confine.py) and then try what it forbids.
Without pyseccomp/libseccomp the filter tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from odeus_triggers.sandbox import confine
from odeus_triggers.sandbox import pool as pool_module

from support.sandbox_helpers import child_pids

CONFINE = Path(confine.__file__)
WORKER = CONFINE.with_name("worker.py")
UNDER_CI = os.environ.get("CI") == "true"
AS_ROOT = os.geteuid() == 0
NOBODY = 65534


def require_seccomp() -> None:
    reason = confine.seccomp_unavailable()
    if reason is None:
        return
    if UNDER_CI:
        pytest.fail(f"CI=true but the sandbox has no seccomp ({reason}): install libseccomp2 and pyseccomp")
    pytest.skip(f"no seccomp here: {reason}")


def worker_pids() -> set[int]:
    pids = set()
    for pid in child_pids():
        try:
            if str(WORKER).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.add(pid)
        except OSError:
            pass
    return pids


def status_fields(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def open_files(pid: int) -> list[str]:
    # Only the kind of a channel matters: uvloop hands stdio over as socket pairs, not pipes.
    targets = (os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd"))
    return sorted("pipe" if t.startswith(("pipe:", "socket:")) else t for t in targets)


def expected_files(pid: int) -> list[str]:
    # stdin and the protocol's copy of stdout; stdout and stderr on /dev/null; the two /proc
    # files the memory probe keeps open because it cannot open them once filtered.
    return sorted(["pipe", "pipe", "/dev/null", "/dev/null", f"/proc/{pid}/status", f"/proc/{pid}/clear_refs"])


async def test_live_workers_are_confined(make_pool):
    # Only this pool's workers: they have all said "ready", so confinement is complete.
    before = worker_pids()
    pool = await make_pool()
    pids = worker_pids() - before
    assert pids
    for pid in pids:
        status = status_fields(pid)
        assert status["NoNewPrivs"] == "1"
        if confine.seccomp_unavailable() is None:
            assert status["Seccomp"] == "2"  # filter mode
        if AS_ROOT:
            assert status["Uid"].split() == [str(NOBODY)] * 4
            assert status["Gid"].split() == [str(NOBODY)] * 4
            assert status["Groups"].strip() == ""
            assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0
            # Not dumpable: its /proc files stay root's, so other nobody processes cannot ptrace it.
            assert os.stat(f"/proc/{pid}/mem").st_uid == 0
        assert Path(f"/proc/{pid}/environ").read_bytes() == b""
        assert open_files(pid) == expected_files(pid)
    result = await pool.run("return [{id: 1}]", inputs={}, secrets={}, last_poll_time=None)
    assert result.ok, result.error


def test_seccomp_is_available():
    require_seccomp()


UVLOOP_POOL = r"""
import json, os
import uvloop
from odeus_triggers.sandbox import SandboxLimits, SandboxPool

def files(pid):
    targets = (os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd"))
    return sorted("pipe" if t.startswith(("pipe:", "socket:")) else t for t in targets)

async def main():
    # Inheritable, as descriptors made by C libraries often are: uvloop passes them on.
    leak, _ = os.pipe()
    os.set_inheritable(leak, True)
    async with SandboxPool(SandboxLimits(workers=1)):
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and os.path.exists(f"/proc/{p}/stat")
                and open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1] == str(os.getpid())]
        print(json.dumps({pid: files(pid) for pid in pids}))

uvloop.run(main())
"""


def test_workers_started_under_uvloop_inherit_no_descriptors():
    pytest.importorskip("uvloop")
    out = subprocess.run(
        [sys.executable, "-c", UVLOOP_POOL],
        capture_output=True, text=True, timeout=60, check=True,
    )
    files = json.loads(out.stdout)
    assert files
    for pid, found in files.items():
        assert found == expected_files(int(pid))


CONFINED = r"""
import importlib.util, json, mmap, os, socket, sys
spec = importlib.util.spec_from_file_location("confine", sys.argv[1])
confine = importlib.util.module_from_spec(spec)
spec.loader.exec_module(confine)
parent, mode = int(sys.argv[2]), sys.argv[3]

def attempt(action):
    try:
        action()
    except OSError as exc:
        return exc.errno
    return 0

def fork():
    if os.fork() == 0:
        os._exit(0)

if mode == "uid-only":
    confine.drop_privileges(65534, 65534)
    filtered = False
else:
    filtered = confine.apply(65534, 65534)
out = {
    "filtered": filtered,
    # getuid() is not on the allow-list; the live-worker test reads the user from outside.
    "uid": None if filtered else os.getuid(),
    "open": attempt(lambda: open("/etc/hostname", "rb").close()),
    "socket": attempt(lambda: socket.socket().close()),
    "environ": attempt(lambda: open(f"/proc/{parent}/environ", "rb").close()),
    "exec_memory": attempt(lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_EXEC)),
    "fork": attempt(fork),
}
sys.stdout.write(json.dumps(out))
"""


def run_confined(mode: str = "full", *, prelude: str = "") -> dict:
    out = subprocess.run(
        [sys.executable, "-I", "-B", "-c", prelude + CONFINED, str(CONFINE), str(os.getpid()), mode],
        capture_output=True, text=True, env={}, cwd="/", timeout=30,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_filter_denies_files_sockets_executable_memory_and_fork():
    require_seccomp()
    out = run_confined()
    assert out["filtered"] is True
    assert out["open"] == errno.EPERM
    assert out["socket"] == errno.EPERM
    assert out["environ"] == errno.EPERM
    assert out["exec_memory"] == errno.EPERM
    assert out["fork"] == errno.EPERM


@pytest.mark.skipif(not AS_ROOT, reason="workers switch user only when the service runs as root")
def test_worker_user_alone_cannot_read_the_parents_environment():
    # The filter would stop the read anyway; this shows the switch of user holds on its own.
    out = run_confined("uid-only")
    assert out["uid"] == NOBODY
    assert out["environ"] == errno.EACCES


def test_without_pyseccomp_confinement_still_applies_the_rest():
    out = run_confined(prelude="import sys; sys.modules['pyseccomp'] = None\n")
    assert out["filtered"] is False
    assert out["open"] == 0  # unfiltered: only the user switch and no_new_privs remain
    if AS_ROOT:
        assert out["uid"] == NOBODY
        assert out["environ"] == errno.EACCES


def test_worker_without_pyseccomp_still_starts():
    hidden = "import runpy, sys; sys.modules['pyseccomp'] = None; sys.argv = sys.argv[1:]; "
    proc = subprocess.Popen(
        [sys.executable, "-I", "-B", "-c", hidden + "runpy.run_path(sys.argv[0], run_name='__main__')",
         str(WORKER), "{}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={}, cwd="/",
    )
    try:
        hello = json.loads(proc.stdout.readline())
        assert hello["type"] == "ready"
        status = status_fields(proc.pid)
        assert (status["NoNewPrivs"], status["Seccomp"]) == ("1", "0")
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0


async def test_pool_start_warns_once_without_seccomp(make_pool, monkeypatch, caplog):
    monkeypatch.setattr(confine, "seccomp_unavailable", lambda: "ImportError: no pyseccomp")
    with caplog.at_level(logging.WARNING, logger=pool_module.__name__):
        pool = await make_pool()
        await pool.start()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "seccomp" in r.getMessage()]
    assert len(warnings) == 1
    assert "ImportError: no pyseccomp" in warnings[0].getMessage()


async def test_pool_start_does_not_warn_with_seccomp(make_pool, caplog):
    require_seccomp()
    with caplog.at_level(logging.WARNING, logger=pool_module.__name__):
        await make_pool()
    assert not [r for r in caplog.records if "seccomp" in r.getMessage()]
