"""The client address a request's failed authentications count against.

It is the TCP peer's, unless the peer is one of the proxies the API was told to trust
(`ApiConfig.trusted_proxies`). Each proxy appends the address it received the request from
to `X-Forwarded-For`, so the entries on the right were written by trusted proxies and those
on the left by whoever sent the request: the client is the right-most entry that is not a
trusted proxy. From any other peer the header is ignored, or a client could pick a fresh
budget with each request.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from fastapi import Request

from publisher_api.state import state_of

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address


def client_address(request: Request) -> str:
    """The address whose failed-authentication budget `request` spends."""
    peer = request.client.host if request.client else ""
    trusted = state_of(request).config.trusted_proxies
    if not trusted:
        return peer
    return forwarded_client(peer, request.headers.getlist("x-forwarded-for"), trusted)


def forwarded_client(peer: str, forwarded_for: Sequence[str], trusted: Sequence[Network]) -> str:
    """The client behind `peer`, from its `X-Forwarded-For` headers if `peer` is trusted.

    An entry that is no address (`unknown`, say) stops the search: the request counts against
    the last proxy that forwarded it, as it would with no header at all.
    """
    if not _trusted(_address(peer), trusted):
        return peer
    client = peer
    entries = [entry for header in forwarded_for for entry in header.split(",")]
    for entry in reversed(entries):
        address = _address(entry)
        if address is None:
            return client
        if not _trusted(address, trusted):
            return str(address)
        client = str(address)
    return client  # every hop a trusted proxy: the first of them sent it


def _trusted(address: Address | None, trusted: Sequence[Network]) -> bool:
    return address is not None and any(address in network for network in trusted)


def _address(text: str) -> Address | None:
    """An address as proxies write it: `192.0.2.1`, `2001:db8::1`, with a port or without."""
    text = text.strip()
    if text.startswith("["):  # [2001:db8::1]:443
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # 192.0.2.1:443
        text = text.partition(":")[0]
    try:
        address = ip_address(text)
    except ValueError:
        return None
    # A dual-stack socket shows an IPv4 peer as ::ffff:a.b.c.d; a list names it as IPv4.
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
