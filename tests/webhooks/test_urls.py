"""W15: which URLs are refused at registration, by form and by what their host resolves to."""

from __future__ import annotations

import ipaddress
import os

import pytest

from autostamp.settings import Settings
from autostamp.supervisor import embedded_webhook_networks
from autostamp.wiring import network_policy
from ledger.errors import UnsafeUrl
from tests.webhooks.support import StubResolver
from webhooks.urls import PUBLIC_ONLY, SPECIAL_PURPOSE, NetworkPolicy, check_url, parse_url, refusal

PUBLIC = "93.184.216.34"
# What the embedded default allows: a receiver on this machine.
LOOPBACK = NetworkPolicy.of("127.0.0.0/8", "::1/128")

REFUSED_URLS = {
    "http://hooks.example.com/": "only https",
    "ftp://hooks.example.com/": "only https",
    "https://user:pw@hooks.example.com/": "credentials",
    "https:///nohost": "no plain host",
    "https://hooks.example.com:99999/": "not a valid URL|out of range",
    "https://127.0.0.1/": "loopback",
    "https://127.9.9.9:8443/": "loopback",
    "https://10.0.0.5/": "private network",
    "https://172.16.3.4/": "private network",
    "https://192.168.1.1/": "private network",
    "https://169.254.169.254/latest/meta-data/": "cloud metadata",
    "https://169.254.10.10/": "link-local",
    "https://100.64.0.1/": "carrier-grade NAT",
    "https://0.0.0.0/": "unspecified|not a public",
    "https://224.0.0.1/": "multicast",
    "https://[::1]/": "loopback",
    "https://[fd00::1]/": "unique local",
    "https://[fe80::1]/": "link-local",
    "https://[fe80::1%25eth0]/": "not a valid IPv6 address|no plain host",
    "https://[::ffff:127.0.0.1]/": "loopback inside an IPv6",
    "https://[::ffff:169.254.169.254]/": "metadata service inside an IPv6",
    "https://[64:ff9b::a00:1]/": "private network inside an IPv6",
    "https://[2002:7f00:1::]/": "loopback inside an IPv6",
    "https://192.0.0.8/": "IETF protocol assignments",
    "https://192.0.2.10/": "documentation",
    "https://198.18.0.1/": "benchmarking",
    "https://240.0.0.1/": "reserved",
    "https://[fec0::1]/": "site-local",
    "https://[3fff::1]/": "documentation",
    "https://[2001:db8::1]/": "documentation",
    "https://[5f00::1]/": "segment routing",
    "https://[64:ff9b:1::1]/": "local-use IPv4/IPv6 translation",
    "https://2130706433/": "non-standard notation",
    "https://0x7f000001/": "non-standard notation",
    "https://0177.0.0.1/": "Invalid IPv4 address",
    "https://127.1/": "non-standard notation",
    "https://0x7f.0.0.1/": "non-standard notation",
    "https://999.1.1.1/": "Invalid IPv4 address",
    "https://1.2.3.4.5/": "not a valid IP address",
    "https://localhost/": "loopback name",
    "https://api.localhost/": "loopback name",
    "https://private.example.com/": "resolves to an address that is private network",
    "https://mixed.example.com/": "resolves to an address that is loopback",
    "https://nowhere.example.com/": "does not resolve",
}

RESOLVER = StubResolver(
    {
        "hooks.example.com": [[PUBLIC]],
        "private.example.com": [["10.1.2.3"]],
        "mixed.example.com": [[PUBLIC, "127.0.0.1"]],
    }
)


@pytest.mark.parametrize(("url", "reason"), REFUSED_URLS.items(), ids=list(REFUSED_URLS))
async def test_w15_refused_at_registration(url: str, reason: str) -> None:
    with pytest.raises(UnsafeUrl, match=reason):
        await check_url(url, RESOLVER, policy=PUBLIC_ONLY)


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/webhooks",
        "https://HOOKS.example.com./webhooks?x=1",
        f"https://{PUBLIC}:8443/",
        "https://[2606:4700:4700::1111]/",
    ],
)
async def test_public_https_urls_are_accepted(url: str) -> None:
    assert await check_url(url, RESOLVER, policy=PUBLIC_ONLY)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9000/hook", "http://localhost:9000/", "https://[::1]/", "http://[::1]/"],
)
async def test_allowing_loopback_accepts_a_receiver_on_this_machine_over_plain_http(
    url: str,
) -> None:
    resolver = StubResolver({"localhost": [["127.0.0.1"]]})
    assert await check_url(url, resolver, policy=LOOPBACK)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://10.0.0.5/", "private network"),
        ("http://192.168.1.1/", "plain http is accepted only to an allowed network"),
        ("https://[fd00::1]/", "unique local"),
        ("https://private.example.com/", "private network"),
        ("http://hooks.example.com/", "plain http is accepted only to an allowed network"),
    ],
)
async def test_allowing_loopback_opens_nothing_else(url: str, reason: str) -> None:
    # The embedded default allows loopback only: a private address stays out of reach even
    # when the API listens on every interface.
    with pytest.raises(UnsafeUrl, match=reason):
        await check_url(url, RESOLVER, policy=LOOPBACK)


async def test_the_embedded_default_allows_this_machine_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AUTOSTAMP_WEBHOOKS_ALLOWED_NETWORKS", raising=False)
    for name, value in embedded_webhook_networks(os.environ).items():
        monkeypatch.setenv(name, value)
    policy = network_policy(Settings())
    resolver = StubResolver({"localhost": [["127.0.0.1", "::1"]]})
    assert await check_url("http://localhost:8080/hook", resolver, policy=policy)
    for url in ("https://10.0.0.5/", "http://192.168.1.20/", "https://169.254.169.254/"):
        with pytest.raises(UnsafeUrl):
            await check_url(url, resolver, policy=policy)


def test_a_configured_network_list_is_kept_by_the_embedded_default() -> None:
    assert embedded_webhook_networks({"AUTOSTAMP_WEBHOOKS_ALLOWED_NETWORKS": ""}) == {}


@pytest.mark.parametrize(
    ("environment", "loopback_allowed"),
    [
        ({}, True),  # a command run beside `autostamp up`, on the embedded default
        ({"AUTOSTAMP_WEBHOOKS_ALLOWED_NETWORKS": ""}, False),
        ({"DATABASE_URL": "postgresql://db/x", "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092"}, False),
    ],
)
def test_only_the_embedded_default_allows_this_machine_unless_told(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], loopback_allowed: bool
) -> None:
    for name in ("AUTOSTAMP_WEBHOOKS_ALLOWED_NETWORKS", "DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    policy = network_policy(Settings())
    assert policy.is_allowed(ipaddress.ip_address("127.0.0.1")) is loopback_allowed
    assert not policy.is_allowed(ipaddress.ip_address("10.0.0.5"))


async def test_an_allowed_private_range_opens_that_range_alone() -> None:
    office = NetworkPolicy.of("10.1.0.0/16")
    resolver = StubResolver({"hooks.internal": [["10.1.2.3"]], "other.internal": [["10.2.0.1"]]})
    assert await check_url("http://hooks.internal/", resolver, policy=office)
    with pytest.raises(UnsafeUrl, match="private network"):
        await check_url("https://other.internal/", resolver, policy=office)
    with pytest.raises(UnsafeUrl, match="loopback name"):
        await check_url("http://localhost/", resolver, policy=office)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://[fd00:ec2::254]/", "cloud metadata"),
        ("http://169.254.10.10/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[::ffff:169.254.169.254]/", "metadata service inside an IPv6"),
        ("http://metadata.example.com/", "resolves to an address that is cloud metadata"),
    ],
)
async def test_no_allowed_network_opens_metadata_or_link_local(url: str, reason: str) -> None:
    everything = NetworkPolicy.of("0.0.0.0/0", "::/0")
    resolver = StubResolver({"metadata.example.com": [["169.254.169.254"]]})
    with pytest.raises(UnsafeUrl, match=reason):
        await check_url(url, resolver, policy=everything)


async def test_allowing_networks_still_refuses_odd_ip_spellings() -> None:
    with pytest.raises(UnsafeUrl, match="non-standard"):
        await check_url("http://2130706433/", RESOLVER, policy=LOOPBACK)


async def test_a_refusal_never_echoes_the_address_a_name_resolved_to() -> None:
    # An admin key holder could otherwise map the internal network name by name.
    resolver = StubResolver({"db.internal.example.com": [["10.9.8.7"]]})
    with pytest.raises(UnsafeUrl) as refused:
        await check_url("https://db.internal.example.com/", resolver, policy=PUBLIC_ONLY)
    assert "10.9.8.7" not in str(refused.value)


def test_the_host_is_read_as_the_client_reads_it() -> None:
    # A backslash is not a userinfo separator for httpx: the request would go to the second host.
    with pytest.raises(UnsafeUrl, match="credentials"):
        parse_url("https://hooks.example.com\\@127.0.0.1/", policy=PUBLIC_ONLY)
    target = parse_url("https://bücher.example/", policy=PUBLIC_ONLY)
    assert target.host == "xn--bcher-kva.example"
    assert target.port == 443


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e"]
)
def test_public_addresses_have_no_refusal(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("network", "name"), SPECIAL_PURPOSE, ids=[str(network) for network, _ in SPECIAL_PURPOSE]
)
def test_every_special_purpose_block_is_refused_at_both_ends(
    network: ipaddress.IPv4Network | ipaddress.IPv6Network, name: str
) -> None:
    assert refusal(network[0]) is not None
    assert refusal(network[-1]) is not None
