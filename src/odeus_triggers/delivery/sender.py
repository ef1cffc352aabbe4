"""One delivery attempt: POST the signed body through the SSRF-safe transport, and say how it went.

Errors are short and name at most the host: the URL's path and query may carry a token, and the
body and the secrets never appear.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Literal, cast
from urllib.parse import urlsplit

import httpx

from ..egress.transport import AddressRefused, PinnedTransport, ResolveFailed, address_guard
from .retry_schedule import retry_after_floor

ADDRESS_NOT_ALLOWED = "address_not_allowed"
# Enough to let a small answer finish, so its connection can be reused; we never use the body.
RESPONSE_READ_CAP = 4096
MAX_ERROR_CHARS = 500

OutcomeKind = Literal["delivered", "failed", "gone"]


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: OutcomeKind
    status: int | None
    duration_ms: float
    error: str | None = None
    retry_after_s: float | None = None


def new_transport() -> PinnedTransport:
    """One per delivery process: its pools are what makes connections reusable.

    Up to 16 connections per receiver: httpcore scans a pool's connections on every request, so
    CPU per request grows with its size (about 0.8 ms at 8 in flight, 2 ms at 32). Waiting for a
    free connection counts against the attempt's time limit.
    """
    return PinnedTransport(keepalive=True, max_connections=16)


async def send(
    transport: PinnedTransport,
    url: str,
    body: str,
    headers: Mapping[str, str],
    *,
    allow_private: bool,
    connect_timeout: float = 5.0,
    total_timeout: float = 15.0,
) -> Outcome:
    """POST `body` to `url` once; never raises for anything the receiver or the network does."""
    started = time.perf_counter()

    def outcome(kind: OutcomeKind, status: int | None, error: str | None, retry_after: float | None = None) -> Outcome:
        duration_ms = (time.perf_counter() - started) * 1000
        return Outcome(kind, status, duration_ms, error[:MAX_ERROR_CHARS] if error else None, retry_after)

    try:
        target = httpx.URL(url)
        if target.scheme not in ("http", "https") or not target.raw_host:
            raise httpx.InvalidURL("not an http(s) URL")
    except (httpx.InvalidURL, ValueError, UnicodeError):
        return outcome("failed", None, "invalid webhook URL")
    host = (urlsplit(url).hostname or "?")[:100]
    deadline = asyncio.get_running_loop().time() + total_timeout
    try:
        async with asyncio.timeout_at(deadline):
            response = await transport.send(
                "POST", target, list(headers.items()), body.encode("utf-8"),
                check=address_guard(allow_private),
                timeout=httpx.Timeout(total_timeout, connect=connect_timeout),
            )
    except AddressRefused:
        return outcome("failed", None, ADDRESS_NOT_ALLOWED)
    except ResolveFailed:
        return outcome("failed", None, f"could not resolve {host}")
    except httpx.ConnectTimeout:
        return outcome("failed", None, f"timeout: could not connect to {host} within {connect_timeout:g} s")
    except (TimeoutError, httpx.TimeoutException):
        return outcome("failed", None, f"timeout: {host} did not answer within {total_timeout:g} s")
    except httpx.HTTPError as exc:
        return outcome("failed", None, f"could not connect to {host}: {type(exc).__name__} {_short(exc)}".rstrip())
    # The status decides; the body is read only so that the connection can be reused.
    try:
        async with asyncio.timeout_at(deadline):
            await _drain(response)
    except (TimeoutError, httpx.HTTPError):
        pass
    finally:
        await response.aclose()
    status = response.status_code
    if 200 <= status < 300:
        return outcome("delivered", status, None)
    if status == 410:
        return outcome("gone", status, "410 Gone: the receiver asked for no more deliveries")
    if 300 <= status < 400:
        return outcome("failed", status, f"redirect ({status}) not followed")
    return outcome("failed", status, f"HTTP {status}", retry_after_floor(response.headers, status))


async def _drain(response: httpx.Response) -> None:
    read = 0
    # aiter_raw is an async generator (typed as an iterator): closed here, not left to the GC.
    chunks = cast(AsyncGenerator[bytes, None], response.aiter_raw())
    async with contextlib.aclosing(chunks):
        async for chunk in chunks:
            read += len(chunk)
            if read >= RESPONSE_READ_CAP:
                return


def _short(exc: BaseException) -> str:
    # httpcore's messages come from the OS or the TLS library: no URL, no body.
    return " ".join(str(exc).split())[:200]
