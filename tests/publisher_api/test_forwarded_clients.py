"""Behind a trusted proxy each client spends its own failed-authentication budget, and no one
else chooses theirs by sending `X-Forwarded-For`. Over TCP, as `autostamp api` serves."""

from __future__ import annotations

from ipaddress import ip_network

import httpx
import pytest

from publisher_api.client_address import forwarded_client
from tests.publisher_api.conftest import bearer, served_as_autostamp_api
from tests.webhooks.support import TEST_KEY

UNKNOWN_KEY = "ask_0123456789ab_" + "a" * 32
LIST = "/publisher.v1/loyalty-program/list"
BUDGET = 5
"""Failures a minute: one refills every 12 s, longer than any of these tests takes."""
PROXY = "127.0.0.2"
"""The proxy's address: loopback, but not the 127.0.0.1 a server might trust by default."""


@pytest.fixture
def environment(database_url: str, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("AUTOSTAMP_SECRET_KEY", TEST_KEY)
    monkeypatch.setenv("AUTOSTAMP_API_FAILED_AUTH_PER_MINUTE", str(BUDGET))
    return monkeypatch


async def _failing(client: httpx.AsyncClient, forwarded_for: str | None) -> int:
    headers = bearer(UNKNOWN_KEY)
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    return (await client.post(LIST, json={}, headers=headers)).status_code


def _client(port: int, local_address: str) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=local_address)
    return httpx.AsyncClient(transport=transport, base_url=f"http://127.0.0.1:{port}")


async def test_a_peer_that_is_no_trusted_proxy_cannot_choose_its_budget_by_forwarding(
    environment: pytest.MonkeyPatch,
) -> None:
    async with served_as_autostamp_api() as port, _client(port, "127.0.0.1") as client:
        statuses = [await _failing(client, f"203.0.113.{n}") for n in range(BUDGET + 1)]

    assert statuses == [401] * BUDGET + [429]


async def test_behind_a_trusted_proxy_each_forwarded_client_spends_its_own_budget(
    environment: pytest.MonkeyPatch,
) -> None:
    environment.setenv("AUTOSTAMP_API_TRUSTED_PROXIES", f"{PROXY}, 10.0.0.0/8")
    async with served_as_autostamp_api() as port, _client(port, PROXY) as proxy:
        spent = [await _failing(proxy, "203.0.113.7") for _ in range(BUDGET + 1)]
        # Whatever the client wrote sits left of what the proxies appended: the right-most
        # address that is no proxy is the one that connected to them.
        forged = await _failing(proxy, "198.51.100.1, 203.0.113.7")
        through_an_inner_proxy = await _failing(proxy, "203.0.113.7, 10.1.2.3")
        another_client = await _failing(proxy, "203.0.113.8")
        the_proxy_itself = await _failing(proxy, None)

    assert spent == [401] * BUDGET + [429]
    assert (forged, through_an_inner_proxy) == (429, 429)
    assert (another_client, the_proxy_itself) == (401, 401)


async def test_a_peer_that_is_no_trusted_proxy_spends_its_own_budget_beside_a_proxy(
    environment: pytest.MonkeyPatch,
) -> None:
    environment.setenv("AUTOSTAMP_API_TRUSTED_PROXIES", PROXY)
    async with (
        served_as_autostamp_api() as port,
        _client(port, "127.0.0.1") as direct,
        _client(port, PROXY) as proxy,
    ):
        spent = [await _failing(direct, "203.0.113.9") for _ in range(BUDGET + 1)]
        forwarded_for_the_named_client = await _failing(proxy, "203.0.113.9")

    assert spent == [401] * BUDGET + [429]
    assert forwarded_for_the_named_client == 401


TRUSTED = (ip_network("10.0.0.0/8"), ip_network("2001:db8:1::/48"))


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        ("10.0.0.1", ["203.0.113.7"], "203.0.113.7"),
        ("10.0.0.1", ["198.51.100.1, 203.0.113.7", "10.0.0.2"], "203.0.113.7"),
        ("10.0.0.1", ["203.0.113.7:51234"], "203.0.113.7"),
        ("2001:db8:1::5", ["[2001:db8:9::7]:443"], "2001:db8:9::7"),
        ("::ffff:10.0.0.1", ["::ffff:203.0.113.7"], "203.0.113.7"),
        ("10.0.0.1", [], "10.0.0.1"),
        ("10.0.0.1", ["10.0.0.3, 10.0.0.2"], "10.0.0.3"),
        ("10.0.0.1", ["203.0.113.7, unknown"], "10.0.0.1"),
        ("10.0.0.1", ["203.0.113.7, unknown, 10.0.0.2"], "10.0.0.2"),
        ("192.0.2.1", ["203.0.113.7"], "192.0.2.1"),
        ("testclient", ["203.0.113.7"], "testclient"),
    ],
)
def test_the_client_is_the_right_most_forwarded_address_that_is_no_trusted_proxy(
    peer: str, forwarded_for: list[str], client: str
) -> None:
    assert forwarded_client(peer, forwarded_for, TRUSTED) == client
