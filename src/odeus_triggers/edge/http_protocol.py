"""uvicorn's httptools protocol, with a bound on the request head and a lingering close.

Over the bound, the request gets 431 and the connection is closed.

uvicorn sets no limit on the request line or the headers, and httptools joins the pieces of a
header that arrive in separate reads by concatenation: one 100 MB header held the event loop for
seconds, before any middleware (authentication included) could run. Counting here bounds that
work to the limit plus one read.

Completed pieces are measured exactly (`on_url`, `on_header`). A header still arriving is
invisible until it ends, so every read that completes no piece while a head is open counts whole:
all of it is head.

Connections closed while the client may still be sending (a 431, a 413, any response sent
before its request body was read) close through `LingeringTransport`, so the response arrives.
"""

import asyncio
import json
import logging
import uuid
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from ..config import get_settings
from ..errors import PROBLEM_JSON, HeaderFieldsTooLarge
from .lingering import LingeringTransport

log = logging.getLogger("odeus_triggers.access")


class _HeadTooLarge(Exception):
    pass


class HttpProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self.max_header_bytes = settings.max_header_bytes
        self.max_head_bytes = settings.max_head_bytes
        self.max_headers = settings.max_headers
        self.linger_seconds = settings.linger_seconds
        self._head_open = False
        self._progressed = False
        self._head_bytes = 0  # the request target and the completed header fields
        self._pending = 0  # reads since the last completed piece, all of them head
        self._header_count = 0
        self._refused = False
        self._message_done = True  # the last request was read to its end, body included

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        lingering = LingeringTransport(transport, self._may_have_unread_input, self.linger_seconds)
        super().connection_made(lingering)  # type: ignore[arg-type]

    def _may_have_unread_input(self) -> bool:
        return self._refused or not self._message_done

    def data_received(self, data: bytes) -> None:
        # uvicorn's own, except that a head over the limits is answered with 431 instead of 400.
        if self._refused or self.transport.lingering:  # type: ignore[attr-defined]
            return
        self._unset_keepalive_if_required()
        self._progressed = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._refuse(str(exc.__context__))
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._head_open and not self._progressed:
            self._pending += len(data)
            if self._pending > self.max_header_bytes or self._head_bytes + self._pending > self.max_head_bytes:
                self._refuse(self._why(self._pending))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        # This read may also hold the end of the previous request, so it is not counted whole.
        self._head_open = self._progressed = True
        self._message_done = False
        self._head_bytes = self._pending = self._header_count = 0

    def on_url(self, url: bytes) -> None:
        self._progressed = True
        self._head_bytes += len(url)
        if self._head_bytes > self.max_head_bytes:
            raise _HeadTooLarge(self._why(0))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value)
        self._progressed = True
        self._pending = 0
        self._header_count += 1
        self._head_bytes += size + 4  # ": " and CRLF
        if (size > self.max_header_bytes or self._header_count > self.max_headers
                or self._head_bytes > self.max_head_bytes):
            raise _HeadTooLarge(self._why(size))
        HttpToolsProtocol.on_header(self, name, value)  # not super(): this runs for every header

    def on_headers_complete(self) -> None:
        self._head_open = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._message_done = True
        super().on_message_complete()

    def _why(self, field_size: int) -> str:
        if field_size > self.max_header_bytes:
            return f"A header field is larger than {self.max_header_bytes // 1024} KiB."
        if self._header_count > self.max_headers:
            return f"The request has more than {self.max_headers} header fields."
        return f"The request head is larger than {self.max_head_bytes // 1024} KiB."

    def _refuse(self, detail: str) -> None:
        self._refused = True
        request_id = uuid.uuid4().hex
        log.info("- unmatched 431", extra={
            "method": "-", "route": "unmatched", "status": 431, "request_id": request_id,
        })
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # Earlier pipelined requests are still being answered, and a 431 now would land inside
            # their responses: let them finish, then close instead.
            cycle.keep_alive = False
            return
        body = json.dumps(HeaderFieldsTooLarge(detail).body(request_id)).encode()
        head = [STATUS_LINE[431]]
        for name, value in [
            *self.server_state.default_headers,
            (b"content-type", PROBLEM_JSON.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
            (b"connection", b"close"),
        ]:
            head.extend([name, b": ", value, b"\r\n"])
        self.transport.write(b"".join([*head, b"\r\n", body]))
        self.transport.close()
