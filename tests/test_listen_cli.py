"""`odeus-triggers listen` as a developer runs it: a real process, real signed POSTs, its printed lines."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from odeus_triggers.delivery.signing import attempt_headers
from odeus_triggers.subscriptions.service import new_signing_secret

from support.helpers import cli_command

BODY = (
    '{"type":"trigger.event","timestamp":"2026-12-06T10:00:00Z","data":{"id":"issue-42","title":"Crash on save"},'
    '"trigger":{"id":"t1","slug":"new-issue"},"integration":{"id":"i1"},"subscription":{"id":"s1"}}'
)


@pytest.fixture
def listen() -> Iterator[tuple[subprocess.Popen, str, str]]:
    """The receiver on a free port, its secret given through the environment; stopped by SIGTERM."""
    secret = new_signing_secret()
    env = {**os.environ, "ODEUS_LISTEN_SECRET": secret, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cli_command("listen", "--port", "0"), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.match(r"listening on (http://127\.0\.0\.1:\d+/)", first)
        if not match:
            proc.kill()
            pytest.fail(f"no 'listening on' line: {first!r} {proc.communicate(timeout=10)[1][-2000:]}")
        yield proc, match.group(1), secret
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_verified_and_rejected_deliveries(listen):
    proc, url, secret = listen
    with httpx.Client(timeout=10) as client:
        good = client.post(url + "any/path", content=BODY, headers=attempt_headers("msg_good", BODY, secret))
        bad = client.post(url, content=BODY, headers=attempt_headers("msg_bad", BODY, new_signing_secret()))
        tampered = client.post(url, content=BODY.replace("42", "43"), headers=attempt_headers("msg_t", BODY, secret))
        unsigned = client.post(url, content=BODY)
        get = client.get(url)
    assert (good.status_code, bad.status_code, tampered.status_code, unsigned.status_code) == (204, 400, 400, 400)
    assert get.status_code == 405
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert re.fullmatch(
        r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  msg_good  trigger=new-issue  event=issue-42  '
        r'\{"id":"issue-42","title":"Crash on save"\}',
        lines[0],
    ), lines[0]
    assert lines[1:4] == [
        "rejected msg_bad : No matching signature found",
        "rejected msg_t : No matching signature found",
        "rejected - : Missing required headers",
    ]
    assert lines[-1] == "stopped"
    assert secret not in out + err


def test_without_a_secret_it_says_how_to_give_one():
    env = {k: v for k, v in os.environ.items() if k != "ODEUS_LISTEN_SECRET"}
    result = subprocess.run(cli_command("listen", "--port", "0"), env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "--secret or ODEUS_LISTEN_SECRET" in result.stderr


def test_secret_as_an_argument_and_ctrl_c():
    secret = new_signing_secret()
    proc = subprocess.Popen(cli_command("listen", "--port", "0", "--secret", secret), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[2]
        response = httpx.post(url, content=BODY, headers=attempt_headers("msg_arg", BODY, secret), timeout=10)
        assert response.status_code == 204
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert "msg_arg  trigger=new-issue" in out and out.splitlines()[-1] == "stopped"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
