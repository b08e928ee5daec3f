"""Every time a request body takes is an RFC 3339 date-time with its offset: a number, a
numeric string (which a lax parser reads as unix seconds) or a time without an offset is a
400, on every call that takes one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.publisher_api.conftest import bearer

Body = Callable[[object], dict[str, Any]]

CALLS: dict[str, tuple[str, Body]] = {
    "operation/list from": ("/publisher.v1/operation/list", lambda at: {"from": at}),
    "operation/list to": ("/publisher.v1/operation/list", lambda at: {"to": at}),
    "reward/report-payout": (
        "/publisher.v1/reward/report-payout",
        lambda at: {"reward_id": "rw_none", "attempt": 1, "outcome": "paid", "reported_at": at},
    ),
}
REFUSED: list[object] = [
    72,
    1.7e9,
    "72",
    "72.5",
    "1767225600",
    "-1",
    True,
    "2026-03-02T09:00:00",  # no offset
    "2026-03-02",
    "2026-03-02T09:00Z",  # no seconds
    "2026-03-02 09:00:00Z",
    "2026-03-02T09:00:00+0100",
    "20260302T090000Z",
    "２０２６-03-02T09:00:00Z",  # noqa: RUF001 (full-width digits are what is refused)
    " 2026-03-02T09:00:00Z",
]
ACCEPTED = ["2026-03-02T09:00:00Z", "2026-03-02T09:00:00.25+01:00", "2026-03-02t09:00:00z"]


@pytest.mark.parametrize("value", REFUSED, ids=repr)
@pytest.mark.parametrize("call", CALLS)
async def test_a_time_that_is_not_rfc_3339_with_an_offset_is_a_400(
    client: httpx.AsyncClient, admin_key: str, call: str, value: object
) -> None:
    path, body = CALLS[call]

    answer = await client.post(path, json=body(value), headers=bearer(admin_key))

    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_request"
    assert "RFC 3339" in answer.json()["error"]["message"]


@pytest.mark.parametrize("value", ACCEPTED)
@pytest.mark.parametrize("call", CALLS)
async def test_an_rfc_3339_time_with_an_offset_is_taken(
    client: httpx.AsyncClient, admin_key: str, call: str, value: str
) -> None:
    path, body = CALLS[call]

    answer = await client.post(path, json=body(value), headers=bearer(admin_key))

    # The payout report names no reward: a 404 says its body was read.
    assert answer.status_code == (200 if call.startswith("operation") else 404), answer.text
