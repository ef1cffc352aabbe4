"""Abuse at the HTTP layer, through a real `odeus-triggers serve` and raw sockets: oversized request
heads, oversized chunked bodies, clients that leave mid-body; and trailing slashes."""

import json
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.helpers import assert_problem, create_path, make_tenant, served

CREATE_ROUTE = "/integrations/v1/{integrationId}/triggers/create"


@pytest.fixture
def service_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODEUS_") and k != "REDIS_URL"}
    env.update(DATABASE_URL=database_url, ODEUS_LOG_LEVEL="INFO", ODEUS_RATE_LIMIT="100000/minute",
               ODEUS_RATE_LIMIT_UNAUTHENTICATED="100000/minute", ODEUS_MAX_BODY_BYTES="65536")
    return env


@pytest.fixture
def service(service_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, Path]]:
    log_path = tmp_path / "service.log"
    with served(service_env, log_path) as origin:
        yield origin, log_path


def _address(origin: str) -> tuple[str, int]:
    host, port = origin.removeprefix("http://").split(":")
    return host, int(port)


def _read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, bool]:
    """Everything the server sends, and whether it ended the connection (EOF or reset) in time."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        return data, False
    return data, True


def _send_quietly(sock: socket.socket, data: bytes, piece: int = 16384) -> None:
    """Send in pieces, as a slow client would; the server may close before all of it is sent."""
    try:
        for start in range(0, len(data), piece):
            sock.sendall(data[start:start + piece])
    except OSError:
        pass


def _status_and_headers(response: bytes) -> tuple[int, dict[str, str]]:
    head = response.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in head[1:])
    return int(head[0].split()[1]), {k.lower(): v for k, v in fields.items()}


class _HealthProbe(threading.Thread):
    """/healthz, over and over, on fresh connections, recording the slowest answer."""

    def __init__(self, origin: str) -> None:
        super().__init__(daemon=True)
        self.origin, self.stopped = origin, threading.Event()
        self.slowest, self.answers, self.failures = 0.0, 0, []  # type: ignore[var-annotated]

    def run(self) -> None:
        while not self.stopped.is_set():
            started = time.monotonic()
            try:
                with httpx.Client(trust_env=False, timeout=10) as client:
                    assert client.get(f"{self.origin}/healthz").status_code == 200
            except Exception as exc:
                self.failures.append(exc)
            self.slowest = max(self.slowest, time.monotonic() - started)
            self.answers += 1
            time.sleep(0.02)


def _refused_head(origin: str, head: bytes) -> None:
    started = time.monotonic()
    with socket.create_connection(_address(origin), timeout=10) as sock:
        sender = threading.Thread(target=_send_quietly, args=(sock, head), daemon=True)
        sender.start()
        response, closed = _read_until_closed(sock, timeout=10)
        sender.join(timeout=10)
    status, headers = _status_and_headers(response)
    assert (status, headers.get("connection")) == (431, "close"), response[:300]
    assert json.loads(response.split(b"\r\n\r\n", 1)[1])["code"] == "header_fields_too_large"
    assert closed and time.monotonic() - started < 5


@pytest.mark.parametrize("workers", [1, 2])
def test_oversized_request_heads_get_431_at_once_and_the_loop_stays_free(service_env, tmp_path, workers):
    big_header = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1024 * 1024) + b"\r\n\r\n"
    # Unbounded, this one held the event loop for seconds: every read was joined to all the previous.
    flood = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (32 * 1024 * 1024) + b"\r\n\r\n"
    many_headers = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(200)) + b"\r\n"
    long_target = b"GET /healthz?" + b"q" * (70 * 1024) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    many_medium = (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 10_000) for i in range(8)) + b"\r\n"
    )
    with served(service_env, tmp_path / "service.log", workers=workers) as origin:
        probe = _HealthProbe(origin)
        probe.start()
        try:
            for head in (big_header, many_headers, long_target, many_medium, flood):
                _refused_head(origin, head)
        finally:
            probe.stopped.set()
            probe.join(timeout=15)
        assert probe.answers > 0 and not probe.failures and probe.slowest < 1.0, (probe.slowest, probe.failures)
        # Heads within the limits, kept alive and pipelined, are served as before.
        with socket.create_connection(_address(origin), timeout=10) as sock:
            fine = (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Ok: " + b"a" * 15_000 + b"\r\n"
                    + b"".join(b"X-H%d: v\r\n" % i for i in range(90)) + b"\r\n")
            sock.sendall(fine + fine)
            answered = b""
            while answered.count(b'{"status":"ok"}') < 2:
                answered += sock.recv(65536)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        assert answered.count(b"HTTP/1.1 200 ") == 2
        # An oversized head behind a pipelined request: the earlier request is answered, then the
        # connection ends (with the 431 too, when the earlier answer was already complete).
        with socket.create_connection(_address(origin), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + many_headers)
            response, closed = _read_until_closed(sock, timeout=5)
        assert response.startswith(b"HTTP/1.1 200 ") and closed
        assert response.count(b"HTTP/1.1 ") == 1 or b"HTTP/1.1 431 " in response
    log = (tmp_path / "service.log").read_text()
    assert "Traceback" not in log and '"level": "ERROR"' not in log, log[-3000:]


def test_a_malformed_request_still_gets_400(service):
    origin, _ = service
    with socket.create_connection(_address(origin), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n")
        response, closed = _read_until_closed(sock, timeout=5)
    assert response.startswith(b"HTTP/1.1 400 ") and closed


async def test_an_oversized_chunked_body_gets_413_and_the_connection_is_closed(app, service):
    origin, _ = service
    tenant = await make_tenant(app)
    send_error: list[OSError] = []

    def upload(sock: socket.socket) -> None:
        chunk = b"4000\r\n" + b" " * 0x4000 + b"\r\n"
        deadline = time.monotonic() + 20
        try:
            while time.monotonic() < deadline:  # far more than the server may read
                sock.sendall(chunk)
        except OSError as exc:
            send_error.append(exc)

    with socket.create_connection(_address(origin), timeout=10) as sock:
        sock.sendall(
            f"POST {create_path('', tenant.integration_id)} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tenant.key}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        uploader = threading.Thread(target=upload, args=(sock,), daemon=True)
        uploader.start()
        response, closed = _read_until_closed(sock, timeout=5)
        # The client is still sending when the server ends its side...
        assert closed and not send_error
        uploader.join(timeout=30)
    status, headers = _status_and_headers(response)
    assert (status, headers["connection"]) == (413, "close"), response[:300]
    assert json.loads(response.split(b"\r\n\r\n", 1)[1])["code"] == "payload_too_large"
    # ... and a few seconds later the server stops taking its bytes altogether.
    assert not uploader.is_alive() and send_error, "the server kept reading the body"
    assert isinstance(send_error[0], (ConnectionResetError, BrokenPipeError)), send_error


async def test_a_declared_oversized_body_gets_413_and_the_connection_is_closed(service):
    origin, _ = service
    with socket.create_connection(_address(origin), timeout=10) as sock:
        sock.sendall(b"POST /integrations/v1/x/triggers/create HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n")
        threading.Thread(target=_send_quietly, args=(sock, b" " * 1_000_000), daemon=True).start()
        response, closed = _read_until_closed(sock, timeout=5)
    assert _status_and_headers(response)[0] == 413 and closed


async def test_a_client_that_leaves_mid_body_is_logged_as_499_not_as_a_server_error(app, service):
    origin, log_path = service
    tenant = await make_tenant(app)
    with socket.create_connection(_address(origin), timeout=10) as sock:
        sock.sendall(
            f"POST {create_path('', tenant.integration_id)} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tenant.key}\r\n"
            "Content-Type: application/json\r\nContent-Length: 10000\r\n\r\n".encode() + b"{" + b" " * 99
        )
        time.sleep(0.3)  # let the server start reading the body
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
        left = [line for line in lines if line.get("route") == CREATE_ROUTE]
        if left:
            break
        time.sleep(0.1)
    assert [(line["level"], line["status"]) for line in left] == [("INFO", 499)], left
    log = log_path.read_text()
    assert "Traceback" not in log and '"level": "ERROR"' not in log, log[-3000:]
    with httpx.Client(trust_env=False, timeout=10) as client:
        scrape = client.get(f"{origin}/metrics").text
    counted = re.findall(r'^odeus_http_requests_total\{method="POST",route="([^"]+)",status="(\d+)"\} (\S+)$', scrape, re.M)
    assert [(status, value) for route, status, value in counted if route == CREATE_ROUTE] == [("499", "1.0")]


@pytest.mark.parametrize("path", ["/integrations/v1/get/", "/integrations/v1/{id}/", "/integrations/v1/{id}/triggers/create/"])
async def test_a_trailing_slash_is_404_never_a_redirect(client, tenant, base, path):
    response = await client.get(base + path.format(id=tenant.integration_id), headers={"Host": "evil.example"})
    assert "location" not in response.headers
    assert_problem(response, 404, "not_found")
    authed = await client.post(base + path.format(id=tenant.integration_id), headers=tenant.auth, json={"name": "x"})
    assert "location" not in authed.headers
    assert_problem(authed, 404, "not_found")
