"""Which IP addresses outbound requests (polling code's `fetch`, webhook deliveries) may reach.

The rule is "globally routable unicast only". Python's ``is_global`` alone is
not enough: it calls multicast global, and it does not look inside IPv6 forms
that embed an IPv4 address (mapped, compatible, 6to4, NAT64), which are the
usual way to smuggle 127.0.0.1 or 169.254.169.254 past a naive check.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Called with (hostname as written in the URL, resolved address); returns a
# refusal reason (without the "fetch refused: " prefix) or None to allow.
AddressCheck = Callable[[str, IPAddress], "str | None"]

_NAT64 = (
    ipaddress.IPv6Network("64:ff9b::/96"),
    ipaddress.IPv6Network("64:ff9b:1::/48"),
)
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")


def parse_ip(text: str) -> IPAddress | None:
    """Parse a strict IP literal (brackets allowed); None for host names."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    for net in _NAT64:
        if ip in net:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    # IPv4-compatible (::a.b.c.d) is deprecated, but some stacks still route it.
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(ip: IPAddress) -> bool:
    """True only for globally routable unicast addresses."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return False
        inner = _embedded_ipv4(ip)
        if inner is not None and not is_public(inner):
            return False
        if ip.is_site_local:
            return False
    elif ip in _CGNAT:
        return False
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def public_only(host: str, ip: IPAddress) -> str | None:
    """Default policy: refuse anything that is not public."""
    if is_public(ip):
        return None
    literal = parse_ip(host)
    if literal is not None and literal == ip:
        return f"{ip} is not a public address"
    return f"{host} resolves to {ip}, which is not a public address"


def allow_all(host: str, ip: IPAddress) -> str | None:
    """Policy for allow_private_network=True (development and tests)."""
    return None
