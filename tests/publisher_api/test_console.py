"""The console over HTTP: who may sign in, what the session cookie is, what each page shows,
and that every form needs the session's CSRF token."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger import console_sessions, keys
from ledger.batch import BatchOutcome
from ledger.database import transaction
from ledger.errors import AuthError, ScopeError
from ledger.flow import record_flow
from ledger.schema import DeadLetter
from ledger.webhook_secrets import seal_secret
from tests.publisher_api.conftest import add_program, issue_key
from tests.webhooks.support import TEST_KEYRING

BASE = "https://testserver"


def card_transaction(tx_id: str, merchant: str, day: int) -> dict[str, object]:
    """A clearing of 4.50 GBP by member_1 on March `day`, 2025."""
    return {
        "id": tx_id,
        "type": "clearing",
        "purchase_id": f"pur-{tx_id}",
        "member_id": "member_1",
        "amount": 450,
        "currency": "GBP",
        "merchant": {"id": merchant, "name": "A shop", "mcc": "5814", "country": "GB"},
        "card": {"id": "card_1", "scheme": "visa", "bin": "41234567", "last4": "4242"},
        "occurred_at": f"2025-03-{day:02d}T08:15:00Z",
    }


@pytest.fixture
async def browser(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client that keeps cookies, over HTTPS (the session cookie is Secure)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


async def signed_in(browser: httpx.AsyncClient, admin_key: str) -> str:
    """Sign in; the CSRF token of the session's forms."""
    answer = await browser.post("/console/sign-in", data={"api_key": admin_key, "then": ""})
    assert answer.status_code == 303, answer.text
    page = await browser.get("/console/flow")
    assert page.status_code == 200
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert found is not None
    return found.group(1)


async def test_a_page_without_a_session_sends_the_browser_to_sign_in(
    browser: httpx.AsyncClient,
) -> None:
    answer = await browser.get("/console/programs")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/sign-in?then=/console/programs"
    form = await browser.get(answer.headers["location"])
    assert form.status_code == 200
    assert 'type="password"' in form.text
    assert "frame-ancestors 'none'" in form.headers["content-security-policy"]


async def test_an_admin_key_opens_a_session_kept_in_a_secure_http_only_cookie(
    browser: httpx.AsyncClient, admin_key: str, async_engine: AsyncEngine
) -> None:
    answer = await browser.post(
        "/console/sign-in", data={"api_key": admin_key, "then": "/console/programs"}
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/programs"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("autostamp_console=acs_")
    for flag in ("HttpOnly", "Secure", "SameSite=strict", "Path=/console"):
        assert flag.lower() in cookie.lower()
    assert admin_key not in cookie
    assert admin_key.split("_")[2] not in answer.headers.get("location", "")
    async with async_engine.connect() as conn:
        stored = (await conn.execute(text("SELECT token_sha256 FROM console_sessions"))).all()
    token = cookie.split(";")[0].split("=", 1)[1]
    assert [len(row.token_sha256) for row in stored] == [64]
    assert token not in {row.token_sha256 for row in stored}
    assert (await browser.get("/console/programs")).status_code == 200


@pytest.mark.parametrize("scope", [keys.Scope.FULL, keys.Scope.READ, keys.Scope.SUPPORT])
async def test_a_key_below_admin_cannot_sign_in(
    browser: httpx.AsyncClient, async_engine: AsyncEngine, scope: keys.Scope
) -> None:
    key = await issue_key(async_engine, scope)
    answer = await browser.post("/console/sign-in", data={"api_key": key})
    assert answer.status_code == 401
    assert "needs an admin key" in answer.text
    assert "set-cookie" not in answer.headers


async def test_an_unknown_key_is_refused_and_counted_against_the_address(
    browser: httpx.AsyncClient,
) -> None:
    statuses = [
        (await browser.post("/console/sign-in", data={"api_key": "ask_x"})).status_code
        for _ in range(22)
    ]
    assert statuses[:20] == [401] * 20
    assert statuses[-1] == 429


async def test_revoking_or_rotating_the_key_ends_its_sessions(
    browser: httpx.AsyncClient, async_engine: AsyncEngine
) -> None:
    async with transaction(async_engine) as conn:
        issued = await keys.create_key(conn, "operator", keys.Scope.ADMIN)
    await signed_in(browser, issued.token)
    async with transaction(async_engine) as conn:
        await keys.rotate_key(conn, issued.record.id)
    assert (await browser.get("/console/flow")).status_code == 303
    async with transaction(async_engine) as conn:
        rotated = await keys.create_key(conn, "operator 2", keys.Scope.ADMIN)
    await signed_in(browser, rotated.token)
    async with transaction(async_engine) as conn:
        await keys.revoke_key(conn, rotated.record.id, datetime.now(UTC))
    assert (await browser.get("/console/flow")).status_code == 303


async def test_a_form_without_the_sessions_csrf_token_is_refused(
    browser: httpx.AsyncClient, admin_key: str
) -> None:
    await signed_in(browser, admin_key)
    answer = await browser.post("/console/reconciliation/run", data={"csrf": "0" * 64})
    assert answer.status_code == 403
    assert (await browser.post("/console/reconciliation/run", data={})).status_code == 403


async def test_a_sign_in_ticket_opens_one_session_once(
    browser: httpx.AsyncClient, async_engine: AsyncEngine
) -> None:
    async with transaction(async_engine) as conn:
        issued = await keys.create_key(conn, "demo", keys.Scope.ADMIN)
        ticket = await console_sessions.issue_ticket(conn, issued.record.id, datetime.now(UTC))
    first = await browser.get(f"/console/ticket/{ticket}")
    assert first.status_code == 303
    assert first.headers["location"] == "/console/flow"
    assert (await browser.get("/console/flow")).status_code == 200
    browser.cookies.clear()
    again = await browser.get(f"/console/ticket/{ticket}")
    assert again.status_code == 401
    assert "used already or has expired" in again.text


@pytest.mark.parametrize("since", ["rotated", "revoked"])
async def test_a_sign_in_link_made_before_its_key_was_rotated_or_revoked_opens_no_session(
    browser: httpx.AsyncClient, async_engine: AsyncEngine, since: str
) -> None:
    async with transaction(async_engine) as conn:
        issued = await keys.create_key(conn, "operator", keys.Scope.ADMIN)
        ticket = await console_sessions.issue_ticket(conn, issued.record.id, datetime.now(UTC))
    async with transaction(async_engine) as conn:
        if since == "rotated":
            await keys.rotate_key(conn, issued.record.id)
        else:
            await keys.revoke_key(conn, issued.record.id, datetime.now(UTC))

    answer = await browser.get(f"/console/ticket/{ticket}")

    assert answer.status_code == 401
    assert "no longer" in answer.text
    assert "set-cookie" not in answer.headers
    assert (await browser.get("/console/flow")).status_code == 303


async def test_signing_out_ends_the_session(browser: httpx.AsyncClient, admin_key: str) -> None:
    csrf = await signed_in(browser, admin_key)
    kept = dict(browser.cookies)
    answer = await browser.post("/console/sign-out", data={"csrf": csrf})
    assert answer.status_code == 303
    browser.cookies.update(kept)  # even with the old cookie, the session is gone
    assert (await browser.get("/console/flow")).status_code == 303


async def test_the_live_flow_shows_what_workers_recorded_and_their_lag(
    browser: httpx.AsyncClient, admin_key: str, async_engine: AsyncEngine
) -> None:
    now = datetime.now(UTC)
    minute = now.replace(second=0, microsecond=0)
    async with transaction(async_engine) as conn:
        counted = BatchOutcome(applied=40, unmatched=7, dead_lettered=2, stamps=38, rewards=3)
        await record_flow(conn, "w1", {minute: counted}, {0: 12, 1: 0}, now)
        await record_flow(conn, "w2", {minute: BatchOutcome(applied=1, stamps=1)}, {}, now)
    await signed_in(browser, admin_key)
    page = (await browser.get("/console/flow")).text
    assert '<dd id="total-transactions">50</dd>' in page
    assert '<dd id="total-stamps">39</dd>' in page
    assert '<dd id="total-rewards">3</dd>' in page
    assert '<dd id="total-dead">2</dd>' in page
    assert re.search(r'<th scope="row">0</th><td>12</td><td>w1</td>', page)


async def test_the_programs_page_shows_rules_and_explains_a_transaction(
    browser: httpx.AsyncClient, admin_key: str, async_engine: AsyncEngine
) -> None:
    await add_program(async_engine, "lp_coffee")
    csrf = await signed_in(browser, admin_key)
    page = (await browser.get("/console/programs")).text
    assert 'id="program-lp_coffee"' in page
    assert "merchant_ids" in page
    tx = json.dumps(card_transaction("tx-1", merchant="mer_elsewhere", day=1))
    explained = await browser.post(
        "/console/programs/explain", data={"csrf": csrf, "transaction": tx}
    )
    assert explained.status_code == 200, explained.text
    assert re.search(r'<th scope="row">lp_coffee</th><td class="bad">no</td>', explained.text)
    bad = await browser.post("/console/programs/explain", data={"csrf": csrf, "transaction": "{"})
    assert bad.status_code == 400
    assert "not a card transaction" in bad.text


async def test_dead_letters_are_listed_with_their_reason_and_paged(
    browser: httpx.AsyncClient, admin_key: str, async_engine: AsyncEngine
) -> None:
    async with transaction(async_engine) as conn:
        for n in range(55):
            await conn.execute(
                insert(DeadLetter).values(
                    source_topic="transactions",
                    source_partition=0,
                    source_offset=n,
                    item=-1,
                    key=b"m",
                    value=b"{not json",
                    size=9,
                    sha256="0" * 64,
                    reason=f"not JSON: letter {n}",
                )
            )
    await signed_in(browser, admin_key)
    first = (await browser.get("/console/dead-letters")).text
    assert "not JSON: letter 54" in first
    assert "not JSON: letter 4<" not in first
    older = re.search(r'href="\?before=(\d+)"', first)
    assert older is not None
    second = (await browser.get(f"/console/dead-letters?before={older.group(1)}")).text
    assert "not JSON: letter 4<" in second


async def test_reconcile_from_the_console_is_recorded_and_shown(
    browser: httpx.AsyncClient, admin_key: str
) -> None:
    csrf = await signed_in(browser, admin_key)
    assert "Never run." in (await browser.get("/console/reconciliation")).text
    answer = await browser.post("/console/reconciliation/run", data={"csrf": csrf})
    assert answer.status_code == 303
    page = (await browser.get(answer.headers["location"])).text
    assert '<dd class="ok">0</dd>' in page
    assert "Reconciliation ran" in page


async def test_a_backtest_upload_reports_stamps_and_rewards_per_day(
    browser: httpx.AsyncClient, admin_key: str
) -> None:
    csrf = await signed_in(browser, admin_key)
    definition = (
        "id: lp_trial\nname: Trial\nqualifying_threshold: 2\n"
        "reward_config: {type: fixed-reward, amount: 300, currency: GBP}\n"
        "display_content: {title: Trial, image: 'https://cdn.example.com/i.png', summary: s,"
        " description: d, terms: t, reward: {formatted: '3 off'}}\n"
        "rules: {merchant_ids: [m1]}\n"
    )
    lines = "\n".join(
        json.dumps(card_transaction(f"tx-{n}", merchant="m1", day=1 + n // 2)) for n in range(4)
    )
    answer = await browser.post(
        "/console/backtest",
        data={"csrf": csrf, "definition": definition, "program_id": ""},
        files={"transactions": ("march.jsonl", lines.encode(), "application/octet-stream")},
    )
    assert answer.status_code == 200, answer.text
    assert re.search(r"<dt>Stamps</dt><dd>4</dd>", answer.text), answer.text
    assert re.search(r"<dt>Rewards</dt><dd>2</dd>", answer.text)
    assert "600 GBP" in answer.text
    assert '<svg class="chart"' in answer.text


async def test_a_session_expires(async_engine: AsyncEngine, admin_key: str) -> None:
    now = datetime.now(UTC)
    async with transaction(async_engine) as conn:
        token = await console_sessions.sign_in(conn, admin_key, now)
        later = now + console_sessions.SESSION_LIFETIME + timedelta(seconds=1)
        assert await console_sessions.session_key(conn, token, now) is not None
        assert await console_sessions.session_key(conn, token, later) is None


@pytest.fixture
async def busy_endpoint(
    browser: httpx.AsyncClient, admin_key: str, async_engine: AsyncEngine
) -> httpx.AsyncClient:
    """A signed-in browser, and `ep_busy` with its 10,000 deliveries."""
    await ten_thousand_deliveries(async_engine)
    await signed_in(browser, admin_key)
    return browser


async def ten_thousand_deliveries(async_engine: AsyncEngine) -> None:
    """An endpoint with 10,000 deliveries: every tenth dead, after one failed attempt."""
    async with transaction(async_engine) as conn:
        await conn.execute(
            text(
                "INSERT INTO webhook_endpoints (id, url, event_types, secret) VALUES "
                "('ep_busy', 'https://hooks.example.com/busy', '[\"stamp.created\"]', :secret)"
            ),
            {"secret": seal_secret(TEST_KEYRING, "ep_busy", "secret", "whsec_" + "eA==")},
        )
        await conn.execute(
            text(
                "INSERT INTO webhook_messages (id, event_type, body, created_at) "
                "SELECT 'msg_' || n, 'stamp.created', '{}', now() - n * interval '1 second' "
                "FROM generate_series(1, 10000) AS n"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO webhook_deliveries (message_id, endpoint_id, status, attempts, "
                "created_at) SELECT 'msg_' || n, 'ep_busy', "
                "CASE WHEN n % 10 = 0 THEN 'dead' ELSE 'delivered' END, 1, "
                "now() - n * interval '1 second' FROM generate_series(1, 10000) AS n"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO webhook_attempts (delivery_id, attempted_at, status_code, "
                "latency_ms) SELECT id, created_at, CASE status WHEN 'dead' THEN 500 ELSE 200 "
                "END, 30 FROM webhook_deliveries"
            )
        )


async def test_ten_thousand_deliveries_are_paged_fifty_at_a_time_every_one_reachable(
    busy_endpoint: httpx.AsyncClient,
) -> None:
    browser = busy_endpoint
    overview = (await browser.get("/console/webhooks")).text
    assert '<a href="/console/webhooks/ep_busy?status=dead">1000</a>' in overview

    newest_first = await walk(browser, "/console/webhooks/ep_busy?status=dead")
    oldest_first = await walk(browser, "/console/webhooks/ep_busy?status=dead&order=oldest")

    assert len(newest_first) == len(set(newest_first)) == 1000
    assert newest_first[:2] == ["msg_10", "msg_20"]  # msg_n was made n seconds ago
    assert oldest_first == newest_first[::-1]


async def test_a_cursor_of_one_order_does_not_continue_the_other_and_an_unknown_order_is_400(
    busy_endpoint: httpx.AsyncClient,
) -> None:
    browser = busy_endpoint
    first = (await browser.get("/console/webhooks/ep_busy")).text
    following = re.search(r'rel="next" href="\?order=newest&amp;cursor=([^&"]+)"', first)
    assert following is not None

    other = f"/console/webhooks/ep_busy?order=oldest&cursor={following.group(1)}"
    assert (await browser.get(other)).status_code == 400
    unknown = await browser.get("/console/webhooks/ep_busy?order=random")
    assert unknown.status_code == 400
    assert "neither newest nor oldest" in unknown.text


async def walk(browser: httpx.AsyncClient, location: str) -> list[str]:
    """Every delivery's message id, following the Next page links from `location`."""
    seen: list[str] = []
    while location:
        page = (await browser.get(location)).text
        rows = re.findall(r"<code>(msg_\d+)</code>", page)
        assert len(rows) <= 50
        seen += rows
        following = re.search(r'rel="next" href="([^"]+)"', page)
        location = (
            f"/console/webhooks/ep_busy{following.group(1).replace('&amp;', '&')}"
            if following
            else ""
        )
    return seen


async def test_no_sign_in_link_is_made_for_an_expired_revoked_or_lesser_key(
    async_engine: AsyncEngine,
) -> None:
    now = datetime.now(UTC)
    async with transaction(async_engine) as conn:
        expired = await keys.create_key(
            conn, "old", keys.Scope.ADMIN, expires_at=now - timedelta(seconds=1)
        )
        revoked = await keys.create_key(conn, "gone", keys.Scope.ADMIN)
        await keys.revoke_key(conn, revoked.record.id, now)
        full = await keys.create_key(conn, "backend", keys.Scope.FULL)
    for issued, error in ((expired, AuthError), (revoked, AuthError), (full, ScopeError)):
        with pytest.raises(error):
            async with transaction(async_engine) as conn:
                await console_sessions.issue_ticket(conn, issued.record.id, now)
