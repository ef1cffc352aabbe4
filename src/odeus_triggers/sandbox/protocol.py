"""The worker's side of the protocol with the parent: the JSON-lines channel, and the prelude's step
report read into plain values (loaded by path by worker.py; imports nothing of the package)."""

from __future__ import annotations

import json
import os
import sys


class ParentGone(Exception):
    pass


class Channel:
    """JSON lines with the parent. fd 1 is re-pointed at /dev/null once the channel has its own copy,
    so that nothing but protocol messages can ever reach the parent."""

    def __init__(self) -> None:
        self._in = sys.stdin.buffer
        self._out = os.fdopen(os.dup(1), "wb")
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)

    def send_raw(self, line: str) -> None:
        try:
            self._out.write(line.encode("utf-8", "surrogatepass") + b"\n")
            self._out.flush()
        except (BrokenPipeError, OSError) as exc:
            raise ParentGone from exc

    def send(self, message: dict) -> None:
        self.send_raw(json.dumps(message, ensure_ascii=False, separators=(",", ":")))

    def recv(self) -> dict | None:
        while True:
            line = self._in.readline()
            if not line:
                return None
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict):
                return message


class BrokenStep(Exception):
    """The prelude's step report is not what the prelude writes: the code tampered with it."""


_REQUEST_FIELDS = {"id": int, "url": str, "method": str, "redirect": str}


def read_step(text: object) -> tuple[bool, float | None, list[dict]]:
    """Parse the prelude's step report into plain values, rebuilding every request field by field.

    Only what passes these checks crosses to the parent, so nothing the code can reach in its
    context (toJSON, prototypes, getters) decides what the parent is sent; the parent still
    counts the requests itself.
    """
    try:
        status = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        status = None
    if not isinstance(status, dict) or not isinstance(status.get("done"), bool):
        raise BrokenStep
    timer = status.get("timer")
    if timer is not None and (isinstance(timer, bool) or not isinstance(timer, (int, float))):
        raise BrokenStep
    fetches = status.get("fetches")
    if not isinstance(fetches, list):
        raise BrokenStep
    requests = []
    for item in fetches:
        if not isinstance(item, dict):
            raise BrokenStep
        request = {}
        for name, kind in _REQUEST_FIELDS.items():
            value = item.get(name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise BrokenStep
            request[name] = value
        headers = item.get("headers")
        body = item.get("body")
        if not isinstance(headers, list) or not (body is None or isinstance(body, str)):
            raise BrokenStep
        if not all(isinstance(h, list) and len(h) == 2 and all(isinstance(x, str) for x in h) for h in headers):
            raise BrokenStep
        request["headers"] = [[name, value] for name, value in headers]
        request["body"] = body
        requests.append(request)
    return status["done"], None if timer is None else float(timer), requests
