"""An operator's console in headless Chromium: signing in, a program and its explanation, a
stamp arriving on the live flow, a dead delivery sent again, and a picture of every page."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncEngine

from autostamp.settings import TopicSettings
from ledger import keys
from ledger.database import transaction
from ledger.webhook_secrets import seal_secret
from streams.kafka import KafkaPublisher, ProducerRecord
from tests.console.conftest import Stack
from tests.streams.conftest import Ledger
from tests.streams.factories import enroll, program, signed, tx
from tests.streams.worker import wait_for
from tests.webhooks.support import TEST_KEYRING

pytestmark = [pytest.mark.kafka, pytest.mark.browser]

WAIT_S = 60
SECRET = "whsec_" + "eA=="


async def admin_key(async_engine: AsyncEngine, name: str = "operator") -> str:
    async with transaction(async_engine) as conn:
        return (await keys.create_key(conn, name, keys.Scope.ADMIN)).token


def sign_in(browser: Any, stack: Stack, key: str, shot: str | None = None) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{stack.url}/console")
    assert browser.current_url.startswith(f"{stack.url}/console/sign-in")
    browser.find_element(By.ID, "api_key").send_keys(key)
    if shot:
        stack.screenshot(browser, shot)
    follow(browser, browser.find_element(By.CSS_SELECTOR, "form button[type=submit]"))


def follow(browser: Any, element: Any) -> None:
    """Click what leads to another page, and wait until the browser has left this one."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    page = browser.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(browser, WAIT_S).until(expected_conditions.staleness_of(page))


def heading(browser: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(browser.find_element(By.TAG_NAME, "h1").text)


def until(
    browser: Any,
    condition: Any,
    what: str,
    timeout_s: float = WAIT_S,
    explain: Callable[[], str] = str,
) -> Any:
    """Wait for `condition` on the page; on time out, fail with `explain()` and the page."""
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    # The live part of a page is replaced while it refreshes: an element found just before
    # may be gone when read, and is looked for again.
    ignored = (StaleElementReferenceException,)
    wait = WebDriverWait(browser, timeout_s, poll_frequency=0.2, ignored_exceptions=ignored)
    try:
        return wait.until(condition, what)
    except TimeoutException:
        pytest.fail(f"{what}: not within {timeout_s}s\n{explain()}\n{browser.page_source}")


def publish(stack: Stack, topics: TopicSettings, records: list[ProducerRecord]) -> None:
    KafkaPublisher({"bootstrap.servers": stack.env["KAFKA_BOOTSTRAP_SERVERS"]}).publish(records)


async def test_an_operator_signs_in_with_an_admin_key_and_nothing_less(
    chrome: Any, stack: Stack, async_engine: AsyncEngine
) -> None:
    from selenium.webdriver.common.by import By

    async with transaction(async_engine) as conn:
        full = (await keys.create_key(conn, "backend", keys.Scope.FULL)).token
    sign_in(chrome, stack, full)
    assert "the console needs an admin key" in chrome.find_element(By.CLASS_NAME, "error").text

    sign_in(chrome, stack, await admin_key(async_engine), shot="sign-in")
    assert heading(chrome) == "Live flow"
    assert chrome.current_url == f"{stack.url}/console/flow"
    [cookie] = chrome.get_cookies()
    assert cookie["name"] == "autostamp_console"
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    assert chrome.execute_script("return document.cookie") == ""  # no script can read it
    stack.screenshot(chrome, "flow")

    follow(chrome, chrome.find_element(By.CSS_SELECTOR, ".sign-out button"))
    assert heading(chrome) == "Sign in"
    chrome.get(f"{stack.url}/console/programs")
    assert heading(chrome) == "Sign in"


async def test_a_published_program_is_shown_with_its_rules_and_explains_a_transaction(
    chrome: Any, stack: Stack, async_engine: AsyncEngine, ledger: Ledger, topics: TopicSettings
) -> None:
    from selenium.webdriver.common.by import By

    publish(stack, topics, signed(topics.programs, program("lp_coffee", threshold=3)))
    wait_for(lambda: ledger.scalar("SELECT count(*) FROM programs") == 1, WAIT_S, "the program")
    sign_in(chrome, stack, await admin_key(async_engine))
    follow(chrome, chrome.find_element(By.LINK_TEXT, "Programs"))
    card = chrome.find_element(By.ID, "program-lp_coffee")
    assert "mer_bean" in card.find_element(By.TAG_NAME, "pre").text

    elsewhere = tx("t-elsewhere", merchant="mer_other")
    chrome.find_element(By.ID, "transaction").send_keys(json.dumps(elsewhere))
    follow(chrome, chrome.find_element(By.CSS_SELECTOR, "#transaction ~ button"))
    row = chrome.find_element(By.CSS_SELECTOR, "#explanation tbody tr")
    cells = [c.text for c in row.find_elements(By.CSS_SELECTOR, "th, td")]
    assert cells[:2] == ["lp_coffee", "no"]
    assert "merchant" in cells[2]
    stack.screenshot(chrome, "programs")


async def test_a_stamp_and_a_reward_arrive_on_the_live_flow_without_reloading_the_page(
    chrome: Any,
    stack: Stack,
    async_engine: AsyncEngine,
    engine: Engine,
    ledger: Ledger,
    topics: TopicSettings,
) -> None:
    from selenium.webdriver.common.by import By

    publish(stack, topics, signed(topics.programs, program("lp_coffee", threshold=2)))
    wait_for(lambda: ledger.scalar("SELECT count(*) FROM programs") == 1, WAIT_S, "the program")
    enroll(engine, member="m1", at=datetime.now(UTC) - timedelta(minutes=1))
    sign_in(chrome, stack, await admin_key(async_engine))

    def shows(element_id: str, figure: str) -> Any:
        return lambda b: b.find_element(By.ID, element_id).text == figure

    until(chrome, shows("total-stamps", "0"), "no stamp yet")
    chrome.execute_script("window.notReloaded = true")

    now = datetime.now(UTC)
    bought = [tx(f"t{n}", at=now + timedelta(seconds=n)) for n in range(2)]
    records = [ProducerRecord(topics.transactions, json.dumps(p).encode(), b"m1") for p in bought]
    publish(stack, topics, records)

    def seen() -> str:
        stamps = ledger.scalar("SELECT count(*) FROM stamps")
        flow = ledger.rows("SELECT * FROM flow_minutes")
        return f"stamps in the ledger: {stamps}; flow: {flow}; worker log:\n{stack.worker.log()}"

    until(chrome, shows("total-stamps", "2"), "two stamps on the live flow", explain=seen)
    until(chrome, shows("total-rewards", "1"), "a reward on the live flow", explain=seen)
    assert chrome.execute_script("return window.notReloaded") is True
    stack.screenshot(chrome, "flow-live")


async def test_a_dead_delivery_is_sent_again_from_the_console(
    chrome: Any, stack: Stack, async_engine: AsyncEngine, engine: Engine
) -> None:
    from selenium.webdriver.common.by import By

    dead_delivery(engine, "ep_shop", "msg_1")
    sign_in(chrome, stack, await admin_key(async_engine))
    follow(chrome, chrome.find_element(By.LINK_TEXT, "Webhooks"))
    stack.screenshot(chrome, "webhooks")
    follow(chrome, chrome.find_element(By.LINK_TEXT, "1"))  # the endpoint's dead deliveries
    row = chrome.find_element(By.CSS_SELECTOR, "#deliveries tr.status-dead")
    row.find_element(By.TAG_NAME, "summary").click()
    assert "HTTP 500" in row.find_element(By.CLASS_NAME, "attempts").text
    stack.screenshot(chrome, "deliveries")
    follow(chrome, row.find_element(By.XPATH, ".//button[normalize-space()='Redeliver']"))

    assert "will be sent again" in chrome.find_element(By.CLASS_NAME, "notice").text
    with engine.connect() as conn:
        status = conn.execute(text("SELECT status, attempts FROM webhook_deliveries")).one()
    assert tuple(status) == ("pending", 0)


async def test_dead_letters_reconciliation_and_a_backtest_in_the_browser(
    chrome: Any,
    stack: Stack,
    async_engine: AsyncEngine,
    ledger: Ledger,
    topics: TopicSettings,
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By

    publish(stack, topics, signed(topics.programs, program("lp_coffee", threshold=2)))
    publish(stack, topics, [ProducerRecord(topics.transactions, b"{not json", b"m1")])
    wait_for(lambda: ledger.scalar("SELECT count(*) FROM dead_letters") == 1, WAIT_S, "a letter")
    sign_in(chrome, stack, await admin_key(async_engine))

    follow(chrome, chrome.find_element(By.LINK_TEXT, "Dead letters"))
    reason = chrome.find_element(By.CSS_SELECTOR, "#dead-letters td.reason").text
    assert "JSON" in reason
    stack.screenshot(chrome, "dead-letters")
    chrome.find_element(By.CSS_SELECTOR, "#dead-letters input[type=checkbox]").click()
    follow(chrome, chrome.find_element(By.XPATH, "//button[normalize-space()='Replay the chosen']"))
    assert "put back on the transactions topic" in chrome.find_element(By.CLASS_NAME, "notice").text
    # Still not JSON: read again from its new place, and refused again, with the first marked.
    wait_for(lambda: ledger.scalar("SELECT count(*) FROM dead_letters") == 2, WAIT_S, "again")
    replayed = ledger.rows("SELECT replayed_at IS NOT NULL AS done FROM dead_letters ORDER BY id")
    assert [r.done for r in replayed] == [True, False]

    follow(chrome, chrome.find_element(By.LINK_TEXT, "Reconciliation"))
    follow(chrome, chrome.find_element(By.XPATH, "//button[normalize-space()='Run now']"))
    figures = chrome.find_element(By.ID, "reconciliation").text
    assert "Differences\n0" in figures
    stack.screenshot(chrome, "reconciliation")

    purchases = tmp_path / "march.jsonl"
    days = [datetime(2026, 3, d, 9, tzinfo=UTC) for d in (2, 2, 3, 4)]
    purchases.write_text("\n".join(json.dumps(tx(f"b{n}", at=at)) for n, at in enumerate(days)))
    follow(chrome, chrome.find_element(By.LINK_TEXT, "Backtest"))
    chrome.find_element(By.ID, "transactions").send_keys(str(purchases))
    follow(chrome, chrome.find_element(By.XPATH, "//button[normalize-space()='Run the backtest']"))
    total = chrome.find_element(By.ID, "backtest-total").text
    assert "Stamps\n4" in total and "Rewards\n2" in total
    assert chrome.find_element(By.CSS_SELECTOR, "svg.chart")
    stack.screenshot(chrome, "backtest")


def dead_delivery(engine: Engine, endpoint_id: str, message_id: str) -> None:
    """An endpoint whose delivery of one message died after an HTTP 500."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO webhook_endpoints (id, url, event_types, secret) VALUES "
                "(:id, 'https://hooks.example.com/loyalty', '[\"stamp.created\"]', :secret)"
            ),
            {"id": endpoint_id, "secret": seal_secret(TEST_KEYRING, endpoint_id, "secret", SECRET)},
        )
        conn.execute(
            text(
                "INSERT INTO webhook_messages (id, event_type, body) "
                "VALUES (:id, 'stamp.created', '{}')"
            ),
            {"id": message_id},
        )
        delivery = conn.execute(
            text(
                "INSERT INTO webhook_deliveries (message_id, endpoint_id, status, attempts) "
                "VALUES (:m, :e, 'dead', 8) RETURNING id"
            ),
            {"m": message_id, "e": endpoint_id},
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO webhook_attempts (delivery_id, attempted_at, status_code, latency_ms,"
                " response_snippet) VALUES (:d, now(), 500, 42, 'upstream failed')"
            ),
            {"d": delivery},
        )
