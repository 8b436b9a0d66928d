"""The client address of a request (Starlette or ``gr.Request``), proxy-aware only for trusted proxies.

``X-Forwarded-For`` is written by whoever sends the request, so it is read only when the direct
peer is one of the configured proxies (``MOBILIA_TRUSTED_PROXIES``, empty by default): then the
right-most hop that is not itself a trusted proxy is the client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

UNKNOWN = "unknown"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=32)
def trusted_networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    """Parse proxy IPs/CIDRs ('10.0.0.1', '10.0.0.0/8', '::1'); ValueError on a malformed one."""
    return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in proxies if p.strip())


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    ip = _ip(address)
    return ip is not None and any(ip in network for network in networks)


def _forwarded_hops(headers) -> list[str]:
    if headers is None:
        return []
    values = headers.getlist("x-forwarded-for") if hasattr(headers, "getlist") else [headers.get("x-forwarded-for")]
    return [hop.strip() for value in values if value for hop in value.split(",") if hop.strip()]


def client_address(request, trusted_proxies: Iterable[str] = ()) -> str:
    """Address to key limits on: the direct peer, or the forwarded client when the peer is a trusted proxy."""
    client = getattr(request, "client", None) if request is not None else None
    peer = getattr(client, "host", None) or UNKNOWN
    networks = trusted_networks(tuple(trusted_proxies))
    if not networks or not _trusted(peer, networks):
        return peer
    address = peer
    for hop in reversed(_forwarded_hops(getattr(request, "headers", None))):
        if not _trusted(address, networks) or _ip(hop) is None:
            break
        address = str(_ip(hop))
    return address
