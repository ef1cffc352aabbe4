"""A transport whose close() can linger: send everything, half-close, drain the input, then close.

Closing a socket that still holds unread input makes the kernel send a TCP reset and drop what it
has not yet sent: a client still uploading an oversized body would see "connection reset" instead
of our 413. So when the input may not be fully read, close() only ends our side (the client sees
the response, then end of file) and discards what still arrives, until the client closes or
`seconds` pass.
"""

import asyncio
from collections.abc import Callable
from typing import Any


class LingeringTransport:
    def __init__(
        self, transport: asyncio.Transport, unread_input: Callable[[], bool], seconds: float
    ) -> None:
        self._transport = transport
        self._unread_input = unread_input
        self._seconds = seconds
        self.lingering = False
        # Bound once: these are on every request's path.
        self.write = transport.write
        self.is_closing = transport.is_closing
        self.get_extra_info = transport.get_extra_info
        self.pause_reading = transport.pause_reading
        self.resume_reading = transport.resume_reading

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def close(self) -> None:
        transport = self._transport
        if self.lingering or transport.is_closing() or not transport.can_write_eof():
            transport.close()
            return
        if not self._unread_input():
            transport.close()
            return
        self.lingering = True
        self.is_closing = lambda: True  # to uvicorn, the connection is closing
        transport.write_eof()
        transport.resume_reading()
        asyncio.get_running_loop().call_later(self._seconds, transport.close)
