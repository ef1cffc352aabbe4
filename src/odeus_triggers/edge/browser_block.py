"""Refuses requests made by web pages on other origins, so an API key never works from a browser.

The API is server-to-server: a key used from a web page would be readable by anyone who opens it.
Servers send neither `Origin` nor `Sec-Fetch-Site`; browsers send them and cannot forge them, so
these two headers tell a page's request apart. The service's own /docs page is same-origin and
passes, which keeps its "Try it out" working.
"""

from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import BrowserRequestBlocked
from ..origins import normalize_origin
from .problem import send_problem

_CROSS_FETCH_SITES = {"cross-site", "same-site"}
_WHY = "the API cannot be called from web pages on other origins."


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def _own_origin(scope: Scope) -> str | None:
    # scope["scheme"] already reflects X-Forwarded-Proto when uvicorn trusts the proxy; the Host
    # header is what the browser put in the address bar, so together they give our origin.
    host = _header(scope, b"host")
    return normalize_origin(f"{scope.get('scheme', 'http')}://{host}") if host else None


def _may_have_body(scope: Scope) -> bool:
    length = _header(scope, b"content-length")
    return (length is not None and length.strip() != "0") or _header(scope, b"transfer-encoding") is not None


def _is_cors_header(name: bytes) -> bool:
    return name.lower().startswith(b"access-control-")


class BrowserBlockMiddleware:
    def __init__(self, app: ASGIApp, public_origins: Iterable[str] = ()) -> None:
        self.app = app
        self.public_origins = {o for o in map(normalize_origin, public_origins) if o}

    def block_reason(self, scope: Scope) -> str | None:
        """Why this request looks like a web page's on another origin, or None if it does not."""
        if scope["method"] == "OPTIONS" and _header(scope, b"access-control-request-method") is not None:
            return f"This is a CORS preflight: {_WHY}"
        origin = _header(scope, b"origin")
        if origin is not None:
            normalized = normalize_origin(origin)
            if normalized is None or (normalized != _own_origin(scope) and normalized not in self.public_origins):
                return f"The Origin header names another origin: {_WHY}"
        fetch_site = (_header(scope, b"sec-fetch-site") or "").strip().lower()
        if fetch_site in _CROSS_FETCH_SITES:
            return f"The browser marked this request as {fetch_site}: {_WHY}"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        reason = self.block_reason(scope)
        if reason is not None:
            detail = f"{reason} Call it from your server, so that your API key stays secret."
            await send_problem(scope, send, BrowserRequestBlocked(detail), close=_may_have_body(scope))
            return

        async def send_without_cors(message: Message) -> None:
            # Nothing here grants CORS, but a header added by a future dependency must not either.
            if message["type"] == "http.response.start":
                message["headers"] = [(k, v) for k, v in message.get("headers", []) if not _is_cors_header(k)]
            await send(message)

        await self.app(scope, receive, send_without_cors)
