"""Confinement of a sandbox worker, applied once at start-up (see worker.py ``main``).

Nothing below can be undone by the worker, so whatever needs the file system (imports, the
prelude, the /proc files the worker keeps open) must be done before ``apply``: after it the
process cannot open a path, make a socket, fork or exec, only use what it already holds.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import resource

# What the worker needs once running (found with strace over the polling tests): its pipes and
# the /proc files it already holds, memory, the clocks behind QuickJS's CPU-time limit and
# time.sleep, entropy, and exit. A few equally harmless neighbours (other clocks, nanosleep,
# signal return and masking) keep other libc versions working. CPython's rt_sigaction at exit
# is left denied: it ignores the failure, and a worker has no use for signal handlers.
ALLOWED_SYSCALLS = (
    "read", "write", "pread64", "close", "brk", "munmap", "mremap", "madvise", "futex",
    "getpid", "getrandom", "clock_gettime", "clock_getres", "gettimeofday", "times", "getrusage",
    "clock_nanosleep", "nanosleep", "rt_sigreturn", "rt_sigprocmask", "exit", "exit_group",
)
# Allowed only without PROT_EXEC: nothing legitimate maps code after start-up (QuickJS has no
# JIT), and writable-then-executable memory is what an exploit of the engine would want first.
NO_EXEC_SYSCALLS = ("mmap", "mprotect")
_PROT_EXEC = 0x4
_PR_SET_DUMPABLE = 4
_PR_SET_NO_NEW_PRIVS = 38


@functools.cache
def _pyseccomp():
    """The pyseccomp module, or the reason it cannot be had (package or libseccomp.so.2 missing)."""
    try:
        import pyseccomp
    except Exception as exc:  # ImportError; RuntimeError/OSError when libseccomp is absent
        return f"{type(exc).__name__}: {exc}"
    return pyseccomp


def seccomp_unavailable() -> str | None:
    """Why workers would run without a seccomp filter, or None when they get one."""
    found = _pyseccomp()
    return found if isinstance(found, str) else None


def close_inherited_fds() -> None:
    # uvloop does not honour close_fds=True, so a worker may hold any descriptor of the API
    # process (database and client sockets, files). The hard limit bounds every open fd.
    os.closerange(3, resource.getrlimit(resource.RLIMIT_NOFILE)[1])


def drop_privileges(uid: int, gid: int) -> None:
    """Become ``uid``/``gid`` with no supplementary groups, when started as root.

    Otherwise the worker already runs as the API's own unprivileged user and cannot switch.
    """
    if os.geteuid() != 0:
        return
    if uid == 0 or gid == 0:
        raise ValueError("sandbox workers must not run as root")
    # Groups first: after setuid there is no permission left to drop them.
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    if 0 in os.getresuid() or 0 in os.getresgid():
        raise OSError(errno.EPERM, "could not drop root privileges")
    # Other processes of that user (nobody is shared) must not ptrace the worker and read the
    # secrets it holds; setuid does this only while the fs.suid_dumpable sysctl is 0.
    _prctl(_PR_SET_DUMPABLE, 0)


def forbid_new_privileges() -> None:
    # Set on its own too, so that setuid binaries stay harmless even without seccomp.
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)


def _prctl(option: int, value: int) -> None:
    if ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def load_filter(pyseccomp) -> None:
    # EPERM rather than killing: a call the allow-list missed then fails as an OSError that the
    # worker reports for that one job, instead of a crash blamed on the user's code. Killing
    # would only stop an exploited engine sooner; it gets no more system calls either way.
    rules = pyseccomp.SyscallFilter(pyseccomp.ERRNO(errno.EPERM))
    # Other ABIs (x32, i386 int 0x80) would bypass the syscall numbers checked here.
    rules.set_attr(pyseccomp.Attr.ACT_BADARCH, pyseccomp.KILL_PROCESS)
    no_exec = pyseccomp.Arg(2, pyseccomp.MASKED_EQ, _PROT_EXEC, 0)  # arg 2: prot
    for names, conditions in ((ALLOWED_SYSCALLS, ()), (NO_EXEC_SYSCALLS, (no_exec,))):
        for name in names:
            number = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)
            if number >= 0:  # not every architecture has every call
                rules.add_rule(pyseccomp.ALLOW, number, *conditions)
    rules.load()


def apply(uid: int, gid: int) -> bool:
    """Confine this process for good; returns whether the seccomp filter is in force.

    Without pyseccomp or libseccomp the worker still starts (the parent warns about it); a
    filter that is available but fails to load raises, so that the worker refuses to start.
    """
    pyseccomp = _pyseccomp()  # before dropping root: the interpreter's own files may be root-only
    drop_privileges(uid, gid)
    forbid_new_privileges()
    if isinstance(pyseccomp, str):
        return False
    load_filter(pyseccomp)
    return True
