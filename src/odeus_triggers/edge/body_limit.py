"""Refuses bodies over the limit with 413, by Content-Length up front or while streaming.

The body is counted chunk by chunk, so an oversized upload is cut off without being held in memory.
"""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import PayloadTooLarge
from .problem import send_problem


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"The request body exceeds the {self.max_bytes // 1024} KiB limit.")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.max_bytes:
                    await send_problem(scope, send, self._too_large(), close=True)
                    return
                break
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise self._too_large()
            return message

        async def closing_send(message: Message) -> None:
            # The rest of an oversized body is still on the wire, and the server would go on
            # reading it to find the next request: ending the connection is the only way out.
            if message["type"] == "http.response.start" and seen > self.max_bytes:
                message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
            await send(message)

        await self.app(scope, counting_receive, closing_send)
