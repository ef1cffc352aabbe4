"""The parent's side of one sandbox worker process: spawn it, send a job, read its replies, kill it."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import cast

from .contracts import SandboxLimits, SandboxUnavailable

_WORKER_SCRIPT = Path(__file__).with_name("worker.py")
_SPAWN_TIMEOUT_S = 10.0


class WorkerGone(Exception):
    pass


class TooDeep(Exception):
    """A well-formed message nested deeper than the JSON decoder recurses."""


class Worker:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.jobs = 0

    @classmethod
    async def spawn(cls, limits: SandboxLimits) -> Worker:
        config = {
            "address_space_bytes": 2 * limits.memory_bytes + 256 * 1024 * 1024,
            "memory_bytes": limits.memory_bytes,
            "stack_bytes": limits.stack_bytes,
            "worker_uid": limits.worker_uid,
            "worker_gid": limits.worker_gid,
        }
        # Worst case of one line from the worker: result, logs and a request
        # body, each possibly JSON-escaped up to 6 bytes per character.
        line_limit = 6 * (limits.max_result_bytes + limits.max_log_bytes + limits.max_response_bytes) + (1 << 20)
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-I", "-B", str(_WORKER_SCRIPT), json.dumps(config),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
                env={},
                cwd="/",
                close_fds=True,
                start_new_session=True,
                limit=line_limit,
            )
        except OSError as exc:
            raise SandboxUnavailable(f"cannot start a sandbox worker: {exc}") from exc
        worker = cls(proc)
        try:
            hello = await worker.recv(_SPAWN_TIMEOUT_S)
        except (TimeoutError, WorkerGone, TooDeep):
            hello = None
        except BaseException:
            # Cancelled mid-spawn (e.g. by close()): never leave the child behind.
            await worker.kill()
            raise
        if not hello or hello.get("type") != "ready":
            await worker.kill()
            raise SandboxUnavailable("a sandbox worker failed to start")
        return worker

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    async def send(self, message: dict) -> None:
        data = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass") + b"\n"
        # One write() puts the whole line in the transport's buffer, so concurrent senders never
        # interleave and need no lock; drain() has supported concurrent waiters since 3.10.
        try:
            # Always a pipe (spawn() asks for one); were it None, the AttributeError is caught.
            stdin = cast(asyncio.StreamWriter, self.proc.stdin)
            stdin.write(data)
            await stdin.drain()
        except (ConnectionError, RuntimeError, AttributeError) as exc:
            raise WorkerGone from exc

    async def recv(self, timeout: float) -> dict:
        try:
            async with asyncio.timeout(max(timeout, 0.0)):
                line = await cast(asyncio.StreamReader, self.proc.stdout).readline()  # a pipe, as stdin
        except (ValueError, asyncio.LimitOverrunError, ConnectionError) as exc:
            # A line longer than any legitimate message: the worker is not
            # following the protocol, so it is not trusted any further.
            raise WorkerGone from exc
        if not line:
            raise WorkerGone
        try:
            message = json.loads(line)
        except RecursionError:
            raise TooDeep from None
        except ValueError as exc:
            raise WorkerGone from exc
        if not isinstance(message, dict):
            raise WorkerGone
        return message

    async def kill(self) -> None:
        if self.proc.returncode is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
        await self.proc.wait()
        if self.proc.stdin is not None:
            self.proc.stdin.close()
