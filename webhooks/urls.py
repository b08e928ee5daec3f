"""Which webhook URLs may be called: https to public addresses, and what the operator allowed.

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
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _registry(*entries: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(network), name) for network, name in entries)


# The IANA IPv4 and IPv6 Special-Purpose Address Registries, and the multicast blocks: no
# webhook receiver lives in any of them, including the few entries the registries mark
# globally reachable (AS112, AMT, ORCHID), which are infrastructure, not servers. Python's
# `ipaddress` flags are checked as well, but they lag the registries (on Python 3.11,
# 192.0.0.8, fec0::/10 and 3fff::/20 pass them).
SPECIAL_PURPOSE = _registry(
    ("0.0.0.0/32", "unspecified address"),
    ("0.0.0.0/8", "'this network'"),
    ("10.0.0.0/8", "private network"),
    ("100.64.0.0/10", "carrier-grade NAT (shared address space)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private network"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation"),
    ("192.31.196.0/24", "AS112 service"),
    ("192.52.193.0/24", "AMT relay"),
    ("192.88.99.0/24", "deprecated 6to4 relay anycast"),
    ("192.168.0.0/16", "private network"),
    ("192.175.48.0/24", "AS112 direct delegation"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("::/128", "unspecified address"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "local-use IPv4/IPv6 translation"),
    ("100::/64", "discard-only"),
    ("100:0:0:1::/64", "dummy IPv6 prefix"),
    ("2001::/23", "IETF protocol assignments"),
    ("2001:db8::/32", "documentation"),
    ("2620:4f:8000::/48", "AS112 direct delegation"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "segment routing (SRv6) identifiers"),
    ("fc00::/7", "IPv6 unique local"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (deprecated)"),
    ("ff00::/8", "multicast"),
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

    Allowing a network (loopback for a receiver on this machine, say) never opens these: a
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
    if (reason := never_allowed(address)) is not None:
        return reason
    listed = (name for network, name in SPECIAL_PURPOSE if address in network)
    if (reason := next(listed, None)) is not None:
        return reason
    if address.is_private or address.is_reserved or not address.is_global:
        return "not a public address"
    return None


@dataclass(frozen=True)
class NetworkPolicy:
    """Where webhooks may go: public addresses, and the networks an operator allowed.

    `allowed` opens networks the special-purpose registries close (loopback for a receiver
    on this machine, a private range for one inside the same network). Plain http is
    accepted only to an allowed network. Metadata and link-local addresses stay closed
    whatever is allowed (`never_allowed`).
    """

    allowed: tuple[IPNetwork, ...] = ()

    @classmethod
    def of(cls, *networks: str) -> NetworkPolicy:
        """A policy allowing these networks (`127.0.0.0/8`, `::1/128`, `10.1.0.0/16`)."""
        return cls(tuple(ipaddress.ip_network(network) for network in networks))

    def is_allowed(self, address: IPAddress) -> bool:
        """True if an operator opened this address: in an allowed network, and never closed."""
        inner = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
        candidates = [address] if inner is None else [address, inner]
        return never_allowed(address) is None and any(
            candidate in network for candidate in candidates for network in self.allowed
        )

    def refusal(self, address: IPAddress, *, scheme: str) -> str | None:
        """Why this address is refused under this policy, for a URL of this scheme."""
        if (reason := never_allowed(address)) is not None:
            return reason
        if self.is_allowed(address):
            return None
        if scheme == "http":
            return "plain http is accepted only to an allowed network"
        return refusal(address)

    @property
    def allows_loopback(self) -> bool:
        return any(ipaddress.ip_address("127.0.0.1") in network for network in self.allowed)


PUBLIC_ONLY = NetworkPolicy()


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
def parse_url(url: str, *, policy: NetworkPolicy) -> Target:
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
    if scheme != "https" and not (policy.allowed and scheme == "http"):
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
    url: str,
    host: str,
    addresses: Sequence[str],
    *,
    policy: NetworkPolicy,
    scheme: str = "https",
) -> list[IPAddress]:
    """The addresses to connect to; raises UnsafeUrl if any one of them is refused.

    The reason names the host and the kind of address, never the address a name resolved
    to: echoing it would map the internal network for whoever may register URLs.
    """
    if not addresses:
        raise UnsafeUrl(url, f"{host} has no address")
    checked = []
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        reason = policy.refusal(address, scheme=scheme)
        if reason is not None:
            where = host if text == host else f"{host} resolves to an address that is"
            raise UnsafeUrl(url, f"{where}: {reason}" if text == host else f"{where} {reason}")
        checked.append(address)
    return checked


def _is_localhost(host: str) -> bool:
    return host == "localhost" or host.endswith(".localhost")


def check_form(url: str, *, policy: NetworkPolicy) -> Target:
    """Everything that can be checked without a lookup: the form, and the host if an address."""
    target = parse_url(url, policy=policy)
    if target.address is not None:
        checked_addresses(url, target.host, [target.host], policy=policy, scheme=target.scheme)
    elif _is_localhost(target.host) and not policy.allows_loopback:
        raise UnsafeUrl(url, f"{target.host} is a loopback name")
    return target


async def check_url(url: str, resolver: Resolver, *, policy: NetworkPolicy) -> list[IPAddress]:
    """Check the URL and every address its host resolves to; raises UnsafeUrl."""
    target = check_form(url, policy=policy)
    if target.address is not None:
        return [target.address]
    try:
        addresses = await resolver.resolve(target.host, target.port)
    except OSError:
        raise UnsafeUrl(url, f"{target.host} does not resolve") from None
    return checked_addresses(url, target.host, addresses, policy=policy, scheme=target.scheme)


def url_policy(resolver: Resolver, *, policy: NetworkPolicy) -> UrlCheck:
    """`check_url` with its resolver and policy bound, as registering an endpoint wants it."""

    async def checked(url: str) -> object:
        return await check_url(url, resolver, policy=policy)

    return checked
