"""`odeus-triggers listen`: a local receiver for a developer's webhook, like `stripe listen`.

It verifies each delivery with the subscription's signing secret, prints one line per delivery
and answers 204 (verified) or 400 (not), so the sender's retries and statuses can be watched.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import TYPE_CHECKING

from .config import Settings

if TYPE_CHECKING:  # imported when the command runs: every other command starts without it
    from standardwebhooks.webhooks import Webhook

SECRET_ENV = "ODEUS_LISTEN_SECRET"
MAX_BODY_BYTES = 1024 * 1024
DATA_PREVIEW_CHARS = 200
_print_lock = threading.Lock()


def _say(line: str) -> None:
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _printable(text: str, limit: int) -> str:
    # Header values and event data come from whoever POSTs: no escape sequences to the terminal.
    clean = "".join(ch if ch.isprintable() else "?" for ch in text)
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def _event_line(msg_id: str, timestamp: str, payload: object) -> str:
    try:
        when = datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError, OSError):
        when = "?"
    fields = [when, _printable(msg_id, 80)]
    if isinstance(payload, dict):
        trigger = payload.get("trigger")
        data = payload.get("data")
        slug = trigger.get("slug") if isinstance(trigger, dict) else None
        event_id = data.get("id") if isinstance(data, dict) else None
        fields += [f"trigger={_printable(str(slug), 80)}", f"event={_printable(str(event_id), 80)}"]
        payload = data
    compact = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return "  ".join([*fields, _printable(compact, DATA_PREVIEW_CHARS)])


def _handler(webhook: Webhook) -> type[BaseHTTPRequestHandler]:
    from standardwebhooks.webhooks import WebhookVerificationError

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "odeus-triggers-listen"

        def log_message(self, format: str, *args: object) -> None:
            pass  # one line per delivery is printed by do_POST

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            msg_id = self.headers.get("webhook-id") or "-"
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY_BYTES:
                self.close_connection = True
                _say(f"rejected {_printable(msg_id, 80)} : missing or too large Content-Length")
                self._answer(400 if length < 0 else 413)
                return
            body = self.rfile.read(length)
            try:
                webhook.verify(body, dict(self.headers.items()), json_parse=False)
            except WebhookVerificationError as exc:
                _say(f"rejected {_printable(msg_id, 80)} : {exc}")
                self._answer(400)
                return
            try:
                payload: object = json.loads(body)
            except ValueError:
                payload = body.decode("utf-8", "replace")
            _say(_event_line(msg_id, self.headers.get("webhook-timestamp", ""), payload))
            self._answer(204)

        def _not_allowed(self) -> None:
            self.send_response(405)
            self.send_header("Allow", "POST")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_PUT = do_PATCH = do_DELETE = _not_allowed

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def cmd_listen(args: argparse.Namespace, settings: Settings | None) -> None:
    from standardwebhooks.webhooks import Webhook

    secret = args.secret or os.environ.get(SECRET_ENV, "")
    if not secret:
        sys.exit(f"odeus-triggers: error: give the subscription's signing secret with --secret or {SECRET_ENV}")
    try:
        webhook = Webhook(secret)
    except Exception:  # binascii.Error, or the library's own for an empty key
        sys.exit("odeus-triggers: error: the signing secret is not a whsec_… secret (base64 after the prefix)")
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")  # event data in a terminal that is not UTF-8
    server = _Server((args.host, args.port), _handler(webhook))
    port = server.server_address[1]
    shown = f"[{args.host}]" if ":" in args.host else args.host
    signal.signal(signal.SIGTERM, _stop)
    _say(f"listening on http://{shown}:{port}/ (any path; Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    _say("stopped")


def add_listen_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("listen", help="receive webhooks locally, verify their signatures and print them")
    p.add_argument("--port", type=int, default=8787)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--secret", default=None, help=f"the subscription's whsec_… secret (or set {SECRET_ENV})")
    p.set_defaults(func=cmd_listen, needs_settings=False)
