"""Whether a webhook URL may be delivered to: its form, and the addresses its host resolves to.

Checked when a subscription is created or changed; delivery checks the address again at every
attempt (DNS can change). Messages name the host and the address, never the path or query,
which may carry a token.
"""

import asyncio
import socket
from urllib.parse import urlsplit

from . import addresses

MAX_URL_LENGTH = 2048
RESOLVE_TIMEOUT_S = 3.0


def url_problem(url: str) -> str | None:
    """What is wrong with the URL's form, or None."""
    if len(url) > MAX_URL_LENGTH:
        return f"must be at most {MAX_URL_LENGTH:,} characters"
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return "must not contain white space or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("https", "http"):
        return "must be an https:// or http:// URL"
    if not parts.hostname:
        return "must have a host"
    if parts.username is not None or parts.password is not None:
        return "must not contain credentials (user:password@); deliveries are signed instead"
    if parts.fragment:
        return "must not contain a fragment (#…)"
    if port == 0:
        return "must not use port 0"
    return None


async def _resolve(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(
        loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout=RESOLVE_TIMEOUT_S
    )
    return [str(info[4][0]) for info in infos]


async def destination_problem(url: str, *, allow_private_network: bool) -> str | None:
    """What forbids delivering to `url`, or None: its form, then every address of its host."""
    problem = url_problem(url)
    if problem is not None:
        return problem
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    literal = addresses.parse_ip(host)
    if literal is not None:
        candidates = [literal]
    else:
        try:
            raw = await _resolve(host, port)
        except (OSError, UnicodeError, TimeoutError):
            return f"has a host that does not resolve ({host[:100]})"
        candidates = [ip for ip in map(addresses.parse_ip, raw) if ip is not None]
        if not candidates:
            return f"has a host that does not resolve ({host[:100]})"
    if allow_private_network:
        return None
    # Every address, not only the first: a mixed answer is a DNS rebinding setup.
    for ip in candidates:
        reason = addresses.public_only(host, ip)
        if reason is not None:
            return f"is not allowed: {reason}"
    return None
