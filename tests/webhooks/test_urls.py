"""W15: which URLs are refused at registration, by form and by what their host resolves to."""

from __future__ import annotations

import ipaddress

import pytest

from ledger.errors import UnsafeUrl
from tests.webhooks.support import StubResolver
from webhooks.urls import check_url, parse_url, refusal

PUBLIC = "93.184.216.34"

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
    "https://192.0.0.8/": "special-purpose|not a public",
    "https://[fec0::1]/": "special-purpose|not a public",
    "https://[3fff::1]/": "special-purpose|not a public",
    "https://2130706433/": "non-standard notation",
    "https://0x7f000001/": "non-standard notation",
    "https://0177.0.0.1/": "Invalid IPv4 address",
    "https://127.1/": "non-standard notation",
    "https://0x7f.0.0.1/": "non-standard notation",
    "https://999.1.1.1/": "Invalid IPv4 address",
    "https://1.2.3.4.5/": "not a valid IP address",
    "https://localhost/": "loopback name",
    "https://api.localhost/": "loopback name",
    "https://private.example.com/": "resolves to 10.1.2.3: private network",
    "https://mixed.example.com/": "resolves to 127.0.0.1: loopback",
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
        await check_url(url, RESOLVER, allow_private=False)


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
    assert await check_url(url, RESOLVER, allow_private=False)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9000/hook", "http://localhost:9000/", "https://10.0.0.5/"]
)
async def test_allowing_private_networks_accepts_local_and_plain_http(url: str) -> None:
    resolver = StubResolver({"localhost": [["127.0.0.1"]]})
    assert await check_url(url, resolver, allow_private=True)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://[fd00:ec2::254]/", "cloud metadata"),
        ("http://169.254.10.10/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[::ffff:169.254.169.254]/", "metadata service inside an IPv6"),
        ("http://metadata.example.com/", "resolves to 169.254.169.254: cloud metadata"),
    ],
)
async def test_allowing_private_networks_never_opens_metadata_or_link_local(
    url: str, reason: str
) -> None:
    # The embedded default allows private networks; a metadata URL would leak credentials.
    resolver = StubResolver({"metadata.example.com": [["169.254.169.254"]]})
    with pytest.raises(UnsafeUrl, match=reason):
        await check_url(url, resolver, allow_private=True)


async def test_allowing_private_networks_still_refuses_odd_ip_spellings() -> None:
    with pytest.raises(UnsafeUrl, match="non-standard"):
        await check_url("http://2130706433/", RESOLVER, allow_private=True)


def test_the_host_is_read_as_the_client_reads_it() -> None:
    # A backslash is not a userinfo separator for httpx: the request would go to the second host.
    with pytest.raises(UnsafeUrl, match="credentials"):
        parse_url("https://hooks.example.com\\@127.0.0.1/", allow_private=False)
    target = parse_url("https://bücher.example/", allow_private=False)
    assert target.host == "xn--bcher-kva.example"
    assert target.port == 443


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e"]
)
def test_public_addresses_have_no_refusal(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None
