"""One outbound HTTP request, sent to an address the guard has checked (the sandbox's `fetch`
hops and webhook deliveries).

The host is resolved at every request, every address it resolves to is checked, and the
connection goes to the checked address itself (URL host replaced by the IP; Host header and TLS
SNI keep the name), so a DNS answer that changes between check and connect cannot redirect us.

httpx's transport is used rather than a Client: a Client would keep cookies, apply proxy
settings from the environment and follow redirects on its own.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import httpx

from . import addresses

Resolver = Callable[[str, int], Awaitable[list[str]]]
# A pool is keyed by everything a connection was checked for; see PinnedTransport.
_PoolKey = tuple[str, str, int, str] | None


class AddressRefused(Exception):
    """The guard refused an address of the host; `reason` names host and address, never a path."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ResolveFailed(Exception):
    def __init__(self, host: str) -> None:
        super().__init__(f"could not resolve {host}")
        self.host = host


def address_guard(allow_private: bool) -> addresses.AddressCheck:
    return addresses.allow_all if allow_private else addresses.public_only


async def system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    # str() only for the type checker: for AF_INET and AF_INET6 the host is always a str.
    return [str(info[4][0]) for info in infos]


async def resolve_checked(
    host: str, port: int, check: addresses.AddressCheck, resolver: Resolver = system_resolver
) -> addresses.IPAddress:
    """The address to connect to; raises AddressRefused or ResolveFailed."""
    literal = addresses.parse_ip(host)
    if literal is not None:
        candidates = [literal]
    else:
        try:
            raw = await resolver(host, port)
        except (OSError, UnicodeError):
            raise ResolveFailed(host) from None
        candidates = []
        for text in raw:
            ip = addresses.parse_ip(text)
            if ip is None:
                raise AddressRefused(f"{host} resolved to an unusable address")
            candidates.append(ip)
        if not candidates:
            raise ResolveFailed(host)
    # All of them, not just the one we use: a mixed answer is a rebinding setup.
    for ip in candidates:
        reason = check(host, ip)
        if reason is not None:
            raise AddressRefused(reason)
    return candidates[0]


class _Pool:
    __slots__ = ("transport", "active", "last_used")

    def __init__(self, transport: httpx.AsyncHTTPTransport) -> None:
        self.transport = transport
        self.active = 0
        self.last_used = time.monotonic()


class _ReleasingStream(httpx.AsyncByteStream):
    """The response body; closing it tells the pool the request is over."""

    def __init__(self, inner: Any, release: Callable[[], None]) -> None:
        self._inner = inner
        self._release: Callable[[], None] | None = release

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._inner.__aiter__()

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if self._release is not None:
                release, self._release = self._release, None
                release()


class PinnedTransport:
    """Sends one request to a checked address; redirects are returned, never followed.

    With keep-alive, connections are pooled per (scheme, IP, port, host name): httpcore keys its
    pool by the URL's origin, which is the IP here, and reusing a connection opened with another
    host's SNI would skip that host's certificate check. Without keep-alive one pool serves all.
    """

    def __init__(
        self,
        *,
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
        keepalive: bool = False,
        max_connections: int = 64,
        max_pools: int = 256,
        keepalive_expiry: float = 5.0,
    ) -> None:
        self._resolve = resolver or system_resolver
        self._ssl_context = ssl_context
        self._keepalive = keepalive
        self._max_connections = max_connections
        self._max_pools = max_pools
        self._expiry = keepalive_expiry
        self._pools: OrderedDict[_PoolKey, _Pool] = OrderedDict()

    async def send(
        self,
        method: str,
        url: httpx.URL,
        headers: Sequence[tuple[str, str]],
        content: bytes | None,
        *,
        check: addresses.AddressCheck,
        timeout: httpx.Timeout,
    ) -> httpx.Response:
        """A streamed response the caller must aclose(); raises AddressRefused, ResolveFailed or
        httpx.HTTPError."""
        host = url.raw_host.decode("ascii")
        port = url.port or (443 if url.scheme == "https" else 80)
        ip = await resolve_checked(host, port, check, self._resolve)
        extensions: dict[str, Any] = {"timeout": timeout.as_dict()}
        if url.scheme == "https" and addresses.parse_ip(host) is None:
            extensions["sni_hostname"] = host
        request = httpx.Request(
            method, url.copy_with(host=str(ip)),
            headers=[("Host", url.netloc.decode("ascii")), *headers],
            content=content, extensions=extensions,
        )
        key: _PoolKey = (url.scheme, str(ip), port, host) if self._keepalive else None
        pool = await self._pool_for(key)
        pool.active += 1

        def release() -> None:
            pool.active -= 1
            pool.last_used = time.monotonic()

        try:
            response = await pool.transport.handle_async_request(request)
        except BaseException:
            release()
            raise
        return httpx.Response(
            response.status_code, headers=response.headers, request=request,
            stream=_ReleasingStream(response.stream, release), extensions=response.extensions,
        )

    async def _pool_for(self, key: _PoolKey) -> _Pool:
        pool = self._pools.get(key)
        if pool is not None:
            self._pools.move_to_end(key)
            return pool
        # Registered before any await, so that concurrent first requests share it.
        pool = self._pools[key] = _Pool(httpx.AsyncHTTPTransport(
            # One context for every pool: building one (loading the CA bundle) costs milliseconds.
            verify=self._shared_ssl_context(),
            trust_env=False,
            retries=0,
            limits=httpx.Limits(
                max_connections=self._max_connections,
                max_keepalive_connections=self._max_connections if self._keepalive else 0,
                keepalive_expiry=self._expiry,
            ),
        ))
        for retired in self._take_idle(keep=key):
            await retired.transport.aclose()
        return pool

    def _shared_ssl_context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context(trust_env=False)
        return self._ssl_context

    def _take_idle(self, keep: _PoolKey) -> list[_Pool]:
        # Oldest first: a pool unused past the keep-alive expiry holds only dead sockets, and past
        # max_pools the least recently used idle ones go. A pool with a request in flight stays.
        stale_before = time.monotonic() - self._expiry
        taken = []
        for key, pool in list(self._pools.items()):
            crowded = len(self._pools) > self._max_pools
            if not crowded and pool.last_used >= stale_before:
                break
            if pool.active == 0 and key != keep:
                taken.append(self._pools.pop(key))
        return taken

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), OrderedDict()
        for pool in pools:
            await pool.transport.aclose()
