"""Which webhook URLs may be called: https to public addresses, unless private networks are allowed.

Checked when an endpoint is registered and again before every attempt, where the transport
connects only to the addresses that passed (`webhooks.transport`), so a name that resolves
to a public address at registration and to a private one later (DNS rebinding) is refused.
Classification is pure; resolution goes through the `Resolver` handed in.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import httpx

from ledger.errors import UnsafeUrl

if TYPE_CHECKING:
    from ledger.webhook_endpoints import UrlCheck

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Not private to Python 3.11's `ipaddress`, yet never a webhook receiver's: the IPv4 special
# purpose block (192.0.0.8, say), IPv6 site-local (deprecated, still routed inside sites) and
# the IPv6 documentation prefix 3fff::/20.
_SPECIAL = (
    ipaddress.ip_network("192.0.0.0/24"),
    ipaddress.ip_network("fec0::/10"),
    ipaddress.ip_network("3fff::/20"),
)
# A last label that is a number makes the whole host an IPv4 address for resolvers and browsers.
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)")


class Resolver(Protocol):
    """Turns a host name into the IP addresses a connection would go to."""

    async def resolve(self, host: str, port: int) -> Sequence[str]: ...


@dataclass(frozen=True)
class Target:
    """Where a URL points: its scheme, host (ASCII, lower case) and port."""

    scheme: str
    host: str
    port: int
    address: IPAddress | None  # set when the host is written as an IP address
    url: httpx.URL  # as parsed, for the request


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def never_allowed(address: IPAddress) -> str | None:
    """Why this address is refused whatever the settings: metadata and link-local services.

    Allowing private networks (for a receiver on this machine, say) never opens these: a
    cloud metadata URL would hand instance credentials to whoever reads the deliveries.
    """
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None and (reason := never_allowed(inner)):
            return f"{reason} inside an IPv6 address"
    if address in _METADATA:
        return "cloud metadata service"
    if address.is_link_local:
        return "link-local"
    return None


def refusal(address: IPAddress) -> str | None:
    """Why calling this address is refused, or None for a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None and (reason := refusal(inner)):
            return f"{reason} inside an IPv6 address"
    checks = (
        (address.is_loopback, "loopback"),
        (address in _METADATA, "cloud metadata service"),
        (address.is_link_local, "link-local"),
        (address in _SHARED, "carrier-grade NAT (shared address space)"),
        (address in _UNIQUE_LOCAL, "IPv6 unique local"),
        (address.is_unspecified, "unspecified address"),
        (address.is_multicast, "multicast"),
        (any(address in network for network in _SPECIAL), "special-purpose address"),
        (address.is_private, "private network"),
        (address.is_reserved or not address.is_global, "not a public address"),
    )
    return next((reason for refused, reason in checks if refused), None)


def _ipv4_number(label: str) -> int:
    if label.startswith("0x"):
        return int(label[2:] or "0", 16)
    if len(label) > 1 and label.startswith("0"):
        return int(label, 8)
    return int(label)


def _numeric_ipv4(url: str, host: str) -> ipaddress.IPv4Address:
    """A host like `2130706433`, `0x7f.1` or `0177.0.0.1`: accepted only as a dotted quad."""
    labels = host.split(".")
    try:
        numbers = [_ipv4_number(label) for label in labels]
        *head, last = numbers
        if len(labels) > 4 or any(n > 255 for n in head) or last >= 256 ** (5 - len(labels)):
            raise ValueError(host)
    except ValueError:
        raise UnsafeUrl(url, f"{host!r} is not a valid IP address") from None
    value = sum(n << (8 * (3 - i)) for i, n in enumerate(head)) + last
    address = ipaddress.IPv4Address(value)
    if str(address) != host:
        raise UnsafeUrl(url, f"IP address in a non-standard notation (it is {address})")
    return address


def _literal(url: str, host: str) -> IPAddress | None:
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise UnsafeUrl(url, f"{host!r} is not a valid IPv6 address") from None
    if _NUMERIC_LABEL.fullmatch(host.rsplit(".", 1)[-1]):
        return _numeric_ipv4(url, host)
    return None


@functools.lru_cache(maxsize=4096)
def parse_url(url: str, *, allow_private: bool) -> Target:
    """Check the URL's form: scheme, no credentials, a plain host, a port; raises UnsafeUrl.

    Parsed by httpx, as the request is, so the check and the request see the same host; the
    result is kept, since every attempt checks again.
    """
    try:
        parsed = httpx.URL(url.strip())
        host = parsed.raw_host.decode("ascii").rstrip(".").lower()
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise UnsafeUrl(url, f"not a valid URL ({exc})") from None
    scheme = parsed.scheme
    if scheme != "https" and not (allow_private and scheme == "http"):
        raise UnsafeUrl(url, "only https URLs are accepted")
    if parsed.userinfo:
        raise UnsafeUrl(url, "credentials in the URL are not accepted")
    if not host or "%" in host:
        raise UnsafeUrl(url, "the URL has no plain host name")
    port = parsed.port or (443 if scheme == "https" else 80)
    if not 0 < port < 65536:
        raise UnsafeUrl(url, f"port {port} is out of range")
    return Target(scheme, host, port, _literal(url, host), parsed)


def checked_addresses(
    url: str, host: str, addresses: Sequence[str], *, allow_private: bool
) -> list[IPAddress]:
    """The addresses to connect to; raises UnsafeUrl if any one of them is refused."""
    if not addresses:
        raise UnsafeUrl(url, f"{host} has no address")
    checked = []
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        reason = never_allowed(address) if allow_private else refusal(address)
        if reason is not None:
            where = host if text == host else f"{host} resolves to {address}"
            raise UnsafeUrl(url, f"{where}: {reason}")
        checked.append(address)
    return checked


def _is_localhost(host: str) -> bool:
    return host == "localhost" or host.endswith(".localhost")


def check_form(url: str, *, allow_private: bool) -> Target:
    """Everything that can be checked without a lookup: the form, and the host if an address."""
    target = parse_url(url, allow_private=allow_private)
    if target.address is not None:
        checked_addresses(url, target.host, [target.host], allow_private=allow_private)
    elif _is_localhost(target.host) and not allow_private:
        raise UnsafeUrl(url, f"{target.host} is a loopback name")
    return target


async def check_url(url: str, resolver: Resolver, *, allow_private: bool) -> list[IPAddress]:
    """Check the URL and every address its host resolves to; raises UnsafeUrl."""
    target = check_form(url, allow_private=allow_private)
    if target.address is not None:
        return [target.address]
    try:
        addresses = await resolver.resolve(target.host, target.port)
    except OSError as exc:
        raise UnsafeUrl(url, f"{target.host} does not resolve ({exc})") from exc
    return checked_addresses(url, target.host, addresses, allow_private=allow_private)


def url_policy(resolver: Resolver, *, allow_private: bool) -> UrlCheck:
    """`check_url` with its resolver and policy bound, as registering an endpoint wants it."""

    async def checked(url: str) -> object:
        return await check_url(url, resolver, allow_private=allow_private)

    return checked
