"""SSRF-safe HTTP for polling code, performed by the parent on the worker's behalf.

Every hop (the first request and each redirect) goes through egress.transport, which resolves
the host, checks every address and connects to the checked one; redirects are followed here,
one checked hop at a time.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
import zlib
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from ..egress import addresses
from ..egress.transport import AddressRefused, PinnedTransport, ResolveFailed, Resolver, system_resolver
from . import charsets
from .contracts import SandboxLimits, format_bytes

__all__ = ["FetchBudget", "FetchError", "Fetcher", "Resolver", "system_resolver"]

MAX_REDIRECTS = 5
_REDIRECT_STATUSES = {301, 302, 303, 307, 308}
# Headers the sandbox may not set: they describe the connection or the body
# framing, which we own, or would let a script fight our decompression cap.
_DROPPED_REQUEST_HEADERS = {
    "host", "content-length", "transfer-encoding", "connection", "keep-alive",
    "upgrade", "te", "trailer", "proxy-connection", "accept-encoding",
}
_CROSS_ORIGIN_DROPPED = {"authorization", "cookie", "proxy-authorization"}
# Shorter secret values would match, and so drop, nearly any header.
MIN_SECRET_CHARS = 4
_USER_AGENT = "odeus-triggers-polling/1"
_SCHEME = re.compile(r"^\s*([A-Za-z][A-Za-z0-9+.\-]*):")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# httpx sends header values as ASCII; anything else would fail deep inside it.
_HEADER_VALUE = re.compile(r"^[\t\x20-\x7e]*$")


class FetchError(Exception):
    """A user-facing reason the fetch failed; the message goes to the script as is."""


@dataclass
class FetchBudget:
    """Per-run accounting: how many fetches are left and when the run ends."""

    deadline: float
    max_fetches: int
    used: int = field(default=0)
    # The run's secret values: a header carrying one is not sent to another origin.
    secret_values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.secret_values = tuple(
            s for s in self.secret_values if isinstance(s, str) and len(s) >= MIN_SECRET_CHARS
        )

    def carries_secret(self, value: str) -> bool:
        return any(s in value for s in self.secret_values)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


class Fetcher:
    def __init__(
        self,
        limits: SandboxLimits,
        *,
        resolver: Resolver | None = None,
        address_check: addresses.AddressCheck | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.limits = limits
        self._resolve = resolver or system_resolver
        if address_check is None:
            address_check = addresses.allow_all if limits.allow_private_network else addresses.public_only
        self._check = address_check
        self._ssl_context = ssl_context
        self._transport: PinnedTransport | None = None

    def _get_transport(self) -> PinnedTransport:
        if self._transport is None:
            # No keep-alive: connections would outlive the run that opened them.
            self._transport = PinnedTransport(resolver=self._resolve, ssl_context=self._ssl_context)
        return self._transport

    async def aclose(self) -> None:
        if self._transport is not None:
            transport, self._transport = self._transport, None
            await transport.aclose()

    async def fetch(self, request: object, budget: FetchBudget) -> dict:
        """Perform one fetch described by the worker; raise FetchError to refuse."""
        budget.used += 1
        if budget.used > budget.max_fetches:
            raise FetchError(f"fetch refused: more than {budget.max_fetches} fetches in one run")
        method, url, headers, body, redirect_mode = _validate(request, self.limits)
        remaining = budget.remaining()
        if remaining <= 0:
            raise FetchError("fetch failed: the run's time limit is used up")
        try:
            async with asyncio.timeout(remaining):
                return await self._follow(method, url, headers, body, redirect_mode, budget)
        except TimeoutError:
            raise FetchError(f"fetch failed: {url.host} did not answer within the run's time limit") from None

    async def _follow(self, method, url, headers, body, redirect_mode, budget) -> dict:
        redirects = 0
        while True:
            response = await self._send_one(method, url, headers, body, budget)
            location = response.headers.get("location")
            if response.status_code not in _REDIRECT_STATUSES or not location or redirect_mode == "manual":
                try:
                    payload_body = await _read_body(response, self.limits.max_response_bytes)
                finally:
                    await response.aclose()
                return {
                    "status": response.status_code,
                    "statusText": response.reason_phrase,
                    "headers": [[k.lower(), v] for k, v in response.headers.multi_items()],
                    "body": payload_body,
                    "url": str(url),
                    "redirected": redirects > 0,
                }
            await response.aclose()
            if redirect_mode == "error":
                raise FetchError("fetch failed: the server redirected and redirect is 'error'")
            redirects += 1
            if redirects > MAX_REDIRECTS:
                raise FetchError(f"fetch failed: too many redirects (more than {MAX_REDIRECTS})")
            try:
                next_url = url.join(location)
            except (httpx.InvalidURL, ValueError):
                raise FetchError("fetch failed: the server sent an invalid redirect location") from None
            if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
                if method != "HEAD":
                    method = "GET"
                body = None
                headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
            if next_url.scheme != url.scheme or next_url.host != url.host or next_url.port != url.port:
                # Integrations put API keys in custom headers too (X-Api-Key, ...),
                # so any header holding a secret stays with the origin it was meant for.
                headers = [
                    (k, v) for k, v in headers
                    if k.lower() not in _CROSS_ORIGIN_DROPPED and not budget.carries_secret(v)
                ]
            url = _check_url(next_url)

    async def _send_one(self, method, url: httpx.URL, headers, body, budget) -> httpx.Response:
        host = url.raw_host.decode("ascii")
        all_headers = list(headers)
        names = {k.lower() for k, _ in headers}
        if "user-agent" not in names:
            all_headers.append(("User-Agent", _USER_AGENT))
        if "accept" not in names:
            all_headers.append(("Accept", "*/*"))
        all_headers.append(("Accept-Encoding", "gzip, deflate"))
        try:
            return await self._get_transport().send(
                method, url, all_headers,
                body.encode("utf-8", "replace") if body is not None else None,
                check=self._check, timeout=httpx.Timeout(max(budget.remaining(), 0.001)),
            )
        except AddressRefused as exc:
            raise FetchError(f"fetch refused: {exc.reason}") from None
        except ResolveFailed:
            raise FetchError(f"fetch failed: could not resolve {host}") from None
        except httpx.TimeoutException:
            raise FetchError(f"fetch failed: {host} did not answer within the run's time limit") from None
        except httpx.HTTPError as exc:
            raise FetchError(f"fetch failed: could not connect to {host} ({type(exc).__name__})") from None


def _check_url(url: httpx.URL) -> httpx.URL:
    if url.scheme not in ("http", "https"):
        raise FetchError(f"fetch refused: {url.scheme}: URLs are not allowed (only http and https)")
    if not url.raw_host:
        raise FetchError("fetch refused: the URL has no host")
    return url


def _validate(request: object, limits: SandboxLimits):
    if not isinstance(request, dict):
        raise FetchError("fetch failed: malformed request")
    raw_url = request.get("url")
    method = request.get("method")
    body = request.get("body")
    raw_headers = request.get("headers") or []
    redirect_mode = request.get("redirect") or "follow"
    if not isinstance(raw_url, str) or not isinstance(method, str) or len(method) > 32:
        raise FetchError("fetch failed: malformed request")
    if redirect_mode not in ("follow", "error", "manual"):
        raise FetchError("fetch failed: malformed request")
    if body is not None and (not isinstance(body, str) or len(body.encode("utf-8", "surrogatepass")) > limits.max_response_bytes):
        raise FetchError(f"fetch failed: request body must be a string of at most {format_bytes(limits.max_response_bytes)}")
    scheme_match = _SCHEME.match(raw_url)
    scheme = scheme_match.group(1).lower() if scheme_match else ""
    if scheme and scheme not in ("http", "https"):
        # Checked before parsing so that odd schemes get this message rather
        # than whatever the URL parser makes of them.
        raise FetchError(f"fetch refused: {scheme}: URLs are not allowed (only http and https)")
    try:
        url = httpx.URL(raw_url)
    except (httpx.InvalidURL, ValueError, UnicodeError):
        raise FetchError(f"fetch failed: invalid URL {raw_url[:200]!r}") from None
    url = _check_url(url)
    headers: list[tuple[str, str]] = []
    if not isinstance(raw_headers, list) or len(raw_headers) > 100:
        raise FetchError("fetch failed: malformed request headers")
    for pair in raw_headers:
        if (
            not isinstance(pair, list) or len(pair) != 2
            or not all(isinstance(x, str) for x in pair)
            or not _TOKEN.match(pair[0])
        ):
            raise FetchError("fetch failed: malformed request headers")
        if not _HEADER_VALUE.match(pair[1]):
            raise FetchError(f"fetch failed: the value of header {pair[0]!r} must be printable ASCII")
        if pair[0].lower() in _DROPPED_REQUEST_HEADERS:
            continue
        headers.append((pair[0], pair[1]))
    return method, url, headers, body, redirect_mode


class _Decoder(Protocol):
    """What _read_body needs of a decompressor: zlib's own, or _DeflateDecoder."""

    @property
    def unconsumed_tail(self) -> bytes: ...

    def decompress(self, data: bytes, max_length: int, /) -> bytes: ...


async def _read_body(response: httpx.Response, cap: int) -> str:
    encoding = response.headers.get("content-encoding", "").strip().lower()
    decoder: _Decoder | None
    if encoding in ("", "identity"):
        decoder = None
    elif encoding in ("gzip", "x-gzip"):
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        decoder = _DeflateDecoder()
    else:
        raise FetchError(f"fetch failed: unsupported content-encoding {encoding!r}")
    too_big = FetchError(f"fetch failed: response body exceeds the {format_bytes(cap)} limit")
    out = bytearray()
    raw_total = 0
    try:
        async for chunk in response.aiter_raw():
            raw_total += len(chunk)
            if raw_total > cap:
                raise too_big
            if decoder is None:
                out += chunk
            else:
                # max_length keeps a compression bomb from ever being inflated
                # past the cap, whatever the ratio.
                data = decoder.decompress(chunk, cap + 1 - len(out))
                out += data
                while decoder.unconsumed_tail and len(out) <= cap:
                    out += decoder.decompress(decoder.unconsumed_tail, cap + 1 - len(out))
            if len(out) > cap:
                raise too_big
    except zlib.error:
        raise FetchError("fetch failed: the response body is not valid compressed data") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"fetch failed: the connection broke while reading the body ({type(exc).__name__})") from None
    data, content_type = bytes(out), response.headers.get("content-type")
    if len(data) <= charsets.CHUNK_BYTES:
        return charsets.decode(data, content_type)
    # Linear, yet up to ~0.3 s for a hostile MiB: every tenant shares this loop.
    return await asyncio.to_thread(charsets.decode, data, content_type)


class _DeflateDecoder:
    """'deflate' is zlib-wrapped per the RFC, but servers often send it raw."""

    def __init__(self) -> None:
        self._inner = zlib.decompressobj()
        self._first = True

    @property
    def unconsumed_tail(self) -> bytes:
        return self._inner.unconsumed_tail

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._first:
            self._first = False
            try:
                return self._inner.decompress(data, max_length)
            except zlib.error:
                self._inner = zlib.decompressobj(-zlib.MAX_WBITS)
        return self._inner.decompress(data, max_length)
