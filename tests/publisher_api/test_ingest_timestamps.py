"""A signed ingest key's `X-Timestamp` that cannot be read as unix seconds is a 401, whatever
it holds: never a 500, and never a time the server tries to make of it."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.errors import RequestSignatureRefused
from ledger.request_signing import signature, verify
from tests.conftest import examples
from tests.publisher_api.conftest import bearer
from tests.publisher_api.ingest_support import INGEST, body_of, ingest_key, tx

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SECRET = "isec_the-secret"

UNREADABLE = [
    "253402300800",  # the first second of the year 10000
    "999999999999",
    "9" * 13,
    "9" * 5000,
    "-1",
    "-1767225600",
    "+1767225600",
    "1767225600.5",
    "1.7e9",
    "1_767_225_600",
    "0x69",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "soon",
    "",
    " ",
    "".join(chr(0xFF10 + int(digit)) for digit in "1767225600"),  # full-width digits
]


@pytest.mark.parametrize("timestamp", UNREADABLE)
async def test_an_unreadable_timestamp_is_a_401_with_the_json_error(
    client: httpx.AsyncClient, async_engine: AsyncEngine, timestamp: str
) -> None:
    issued = await ingest_key(async_engine, signed=True)
    assert issued.signing_secret is not None
    body = body_of(tx("t1"))
    headers = {
        **bearer(issued.token),
        "Content-Type": "application/json",
        "X-Signature": signature(issued.signing_secret, int(time.time()), body),
    }

    answer = await client.post(
        INGEST, content=body, headers={**headers, "X-Timestamp": timestamp.encode()}
    )

    assert answer.status_code == 401, answer.text
    assert answer.json()["error"]["code"] == "unauthorized"
    assert "X-Timestamp" in answer.json()["error"]["message"]


@given(
    st.one_of(
        st.integers(min_value=-(10**15), max_value=10**15).map(str),
        st.floats().map(str),
        st.text(),
    )
)
@settings(max_examples=examples(500))
def test_any_timestamp_with_a_wrong_signature_is_refused_as_a_signature(timestamp: str) -> None:
    with pytest.raises(RequestSignatureRefused):
        verify(SECRET, timestamp, "v1=00", b"[]", NOW)
