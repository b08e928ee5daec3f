"""HTTP ingestion: each item judged as the worker judges a message, produced once acknowledged."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import httpx
import orjson
import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from autostamp.embedded import free_port
from autostamp.settings import IngestSettings, TopicSettings
from ledger import keys
from ledger.schema import ApiKey
from streams.decoding import Decoded, RawMessage, decode_into
from streams.kafka import TopicSink
from tests.publisher_api.conftest import bearer, issue_key
from tests.publisher_api.ingest_support import (
    INGEST,
    body_of,
    client_of,
    ingest_app,
    ingest_key,
    signed_headers,
    sink_to,
    topic_messages,
    tx,
)

pytestmark = pytest.mark.kafka
JSON = {"Content-Type": "application/json"}
LINES = {"Content-Type": "application/x-ndjson"}


@pytest.fixture
def sink(kafka_bootstrap: str, topics: TopicSettings) -> Iterator[TopicSink]:
    made = sink_to(kafka_bootstrap, topics)
    yield made
    made.close()


@pytest.fixture
async def client(async_engine: AsyncEngine, sink: TopicSink) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(ingest_app(async_engine, sink)) as client:
        yield client


def dead_letter_reason(item: object) -> str:
    """What the worker would write beside this item, sent alone, on the dead-letter topic."""
    decoded = Decoded()
    decode_into(RawMessage("transactions", 0, 0, None, orjson.dumps(item)), decoded)
    return decoded.rejected[0].reason


async def post(
    client: httpx.AsyncClient, key: str, body: bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.post(
        INGEST, content=body, headers={**JSON, **bearer(key), **(headers or {})}
    )


async def test_valid_items_go_on_the_topic_keyed_by_member_and_bad_ones_are_refused_in_order(
    client: httpx.AsyncClient,
    async_engine: AsyncEngine,
    kafka_bootstrap: str,
    topics: TopicSettings,
) -> None:
    key = (await ingest_key(async_engine)).token
    no_amount = {k: v for k, v in tx("t2").items() if k != "amount"}
    items = [tx("t1", member="m_a"), no_amount, tx("t3", member="m_b", amount=0), "t4", tx("t5")]

    answer = await post(client, key, body_of(*items))

    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "accepted": 2,
        "refused": 3,
        "items": [
            {"index": 0, "id": "t1", "status": "accepted", "seen_before": False},
            {"index": 1, "id": "t2", "status": "refused", "reason": dead_letter_reason(no_amount)},
            {"index": 2, "id": "t3", "status": "refused", "reason": dead_letter_reason(items[2])},
            {"index": 3, "status": "refused", "reason": "message must be a JSON object"},
            {"index": 4, "id": "t5", "status": "accepted", "seen_before": False},
        ],
    }
    produced = topic_messages(kafka_bootstrap, topics.transactions, 2)
    assert sorted((k, orjson.loads(v)["id"]) for k, v in produced) == [
        (b"m1", "t5"),
        (b"m_a", "t1"),
    ]


async def test_json_lines_are_items_and_a_line_that_is_not_json_is_refused_alone(
    client: httpx.AsyncClient, async_engine: AsyncEngine
) -> None:
    key = (await ingest_key(async_engine)).token
    lines = orjson.dumps(tx("t1")) + b"\n{not json\n\n" + orjson.dumps(tx("t2")) + b"\n"

    answer = await post(client, key, lines, LINES)

    assert answer.status_code == 200, answer.text
    statuses = [(i["index"], i["status"]) for i in answer.json()["items"]]
    assert statuses == [(0, "accepted"), (1, "refused"), (2, "accepted")]
    assert answer.json()["items"][1]["reason"].startswith("not valid JSON")


async def test_ids_accepted_before_are_reported_as_seen_before(
    client: httpx.AsyncClient, async_engine: AsyncEngine, engine: Engine
) -> None:
    key = (await ingest_key(async_engine)).token
    await post(client, key, body_of(tx("t1"), tx("t2")))

    again = await post(client, key, body_of(tx("t2"), tx("t3"), tx("t3")))

    seen = [(i["id"], i["seen_before"]) for i in again.json()["items"]]
    assert seen == [("t2", True), ("t3", False), ("t3", True)]
    with engine.connect() as conn:
        ids = conn.execute(text("SELECT transaction_id FROM ingested_transactions")).scalars()
        assert sorted(ids) == ["t1", "t2", "t3"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [(b'{"id": "t1"}', "JSON array"), (b"[{", "not valid JSON"), (b"", "not valid JSON")],
)
async def test_a_body_that_is_not_a_json_array_is_a_400(
    client: httpx.AsyncClient, async_engine: AsyncEngine, body: bytes, problem: str
) -> None:
    key = (await ingest_key(async_engine)).token

    answer = await post(client, key, body)

    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_request"
    assert problem in answer.json()["error"]["message"]


async def test_ingestion_takes_bodies_above_the_general_limit_which_other_calls_keep(
    client: httpx.AsyncClient, async_engine: AsyncEngine
) -> None:
    key = (await ingest_key(async_engine)).token
    admin = await issue_key(async_engine, keys.Scope.ADMIN)
    batch = body_of(*(tx(f"t{n}", member=f"m{n % 50}") for n in range(500)))
    assert len(batch) > 64 * 1024

    ingested = await post(client, key, batch)
    other = await client.post(
        "/publisher.v1/loyalty-program/list",
        content=b" " * len(batch),
        headers={**JSON, **bearer(admin)},
    )

    assert ingested.status_code == 200 and ingested.json()["accepted"] == 500
    assert other.status_code == 413


async def test_too_large_a_body_or_too_many_items_is_a_413_and_other_media_a_415(
    async_engine: AsyncEngine, sink: TopicSink
) -> None:
    key = (await ingest_key(async_engine)).token
    app = ingest_app(async_engine, sink, IngestSettings(max_body_bytes=4096, max_items=3))
    async with client_of(app) as client:
        too_many = await post(client, key, body_of(*(tx(f"t{n}") for n in range(4))))
        too_large = await post(client, key, body_of(tx("t1", padding="x" * 5000)))
        as_text = await post(client, key, body_of(tx("t1")), {"Content-Type": "text/plain"})

    assert too_many.status_code == 413 and "at most 3" in too_many.json()["error"]["message"]
    assert too_large.status_code == 413
    assert too_large.json()["error"]["code"] == "payload_too_large"
    assert as_text.status_code == 415


@pytest.mark.parametrize("scope", [keys.Scope.READ, keys.Scope.FULL, keys.Scope.ENROLL])
async def test_only_ingest_and_admin_keys_may_ingest(
    client: httpx.AsyncClient, async_engine: AsyncEngine, scope: keys.Scope
) -> None:
    other = await issue_key(async_engine, scope)
    admin = await issue_key(async_engine, keys.Scope.ADMIN)

    refused = await post(client, other, body_of(tx("t1")))
    admitted = await post(client, admin, body_of(tx("t1")))

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert admitted.status_code == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/publisher.v1/loyalty-program/list", {}),
        ("/publisher.v1/wallet.stamp-collection/list", {"member_id": "m1"}),
        ("/publisher.v1/reward/list", {"member_id": "m1"}),
        (
            "/publisher.v1/wallet.stamp-collection/create",
            {"loyalty_program_id": "lp", "member_id": "m1"},
        ),
        ("/publisher.v1/member-token/create", {"member_id": "m1"}),
        ("/publisher.v1/webhook-endpoint/list", {}),
    ],
)
async def test_an_ingest_key_can_call_nothing_else(
    client: httpx.AsyncClient, async_engine: AsyncEngine, path: str, body: dict[str, str]
) -> None:
    key = (await ingest_key(async_engine)).token

    answer = await client.post(path, json=body, headers=bearer(key))

    assert answer.status_code == 403, answer.text


async def test_an_unacknowledging_broker_is_a_503_and_nothing_is_accepted(
    async_engine: AsyncEngine, engine: Engine, topics: TopicSettings
) -> None:
    key = (await ingest_key(async_engine)).token
    nowhere = sink_to(f"127.0.0.1:{free_port()}", topics, ack_timeout_s=1.5)
    started = time.monotonic()
    try:
        async with client_of(ingest_app(async_engine, nowhere)) as client:
            answer = await post(client, key, body_of(tx("t1"), tx("t2")))
    finally:
        nowhere.close()

    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "unavailable"
    assert "none was accepted" in answer.json()["error"]["message"]
    assert "Retry-After" in answer.headers
    assert time.monotonic() - started < 10
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM ingested_transactions")).scalar() == 0


async def test_a_signed_key_stores_its_secret_sealed_and_accepts_a_good_signature(
    client: httpx.AsyncClient, async_engine: AsyncEngine, engine: Engine
) -> None:
    issued = await ingest_key(async_engine, signed=True)
    assert issued.signing_secret is not None and issued.signing_secret.startswith("isec_")
    body = body_of(tx("t1"))

    answer = await post(client, issued.token, body, signed_headers(issued.signing_secret, body))

    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 1
    with engine.connect() as conn:
        stored = conn.execute(select(ApiKey.signing_secret)).scalar_one()
    assert stored.startswith("sealed.v1.") and issued.signing_secret not in stored


async def test_a_signed_key_refuses_unsigned_wrong_stale_future_and_replayed_requests(
    client: httpx.AsyncClient, async_engine: AsyncEngine
) -> None:
    issued = await ingest_key(async_engine, signed=True)
    secret = issued.signing_secret
    assert secret is not None
    body = body_of(tx("t1"))
    now = int(time.time())
    good = signed_headers(secret, body, now)
    cases = {
        "unsigned": {},
        "no signature": {"X-Timestamp": str(now)},
        "other secret": signed_headers("isec_not-the-secret", body, now),
        "other body": signed_headers(secret, body_of(tx("t2")), now),
        "stale": signed_headers(secret, body, now - 360),
        "future": signed_headers(secret, body, now + 360),
        "not seconds": {**good, "X-Timestamp": "soon"},
    }

    answers = {
        name: await post(client, issued.token, body, headers) for name, headers in cases.items()
    }
    first = await post(client, issued.token, body, good)
    replayed = await post(client, issued.token, body, good)

    assert {name: a.status_code for name, a in answers.items()} == dict.fromkeys(cases, 401)
    messages = {name: a.json()["error"]["message"] for name, a in answers.items()}
    assert "X-Timestamp" in messages["unsigned"] and "X-Signature" in messages["no signature"]
    assert (
        "does not match" in messages["other secret"] and "does not match" in messages["other body"]
    )
    assert "seconds from the server's time" in messages["stale"]
    assert "seconds from the server's time" in messages["future"]
    assert "unix seconds" in messages["not seconds"]
    assert first.status_code == 200
    assert replayed.status_code == 401 and "used before" in replayed.json()["error"]["message"]


async def test_used_signatures_are_forgotten_once_their_window_has_passed(
    client: httpx.AsyncClient, async_engine: AsyncEngine, engine: Engine
) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO ingest_signatures VALUES "
                "('old', now() - interval '11 minutes'), ('recent', now() - interval '1 minute')"
            )
        )
    issued = await ingest_key(async_engine, signed=True)
    assert issued.signing_secret is not None
    body = body_of(tx("t1"))

    await post(client, issued.token, body, signed_headers(issued.signing_secret, body))

    with engine.connect() as conn:
        kept = set(conn.execute(text("SELECT signature FROM ingest_signatures")).scalars())
    assert "old" not in kept and "recent" in kept and len(kept) == 2


async def test_bad_signatures_spend_the_addresss_failed_authentication_budget(
    client: httpx.AsyncClient, async_engine: AsyncEngine
) -> None:
    issued = await ingest_key(async_engine, signed=True)
    body = body_of(tx("t1"))
    wrong = signed_headers("isec_not-the-secret", body, int(time.time()))
    statuses = [(await post(client, issued.token, body, wrong)).status_code for _ in range(21)]
    assert statuses == [401] * 20 + [429]
