"""`autostamp demo`, then its console link in a browser: the live flow shows stamps, rewards
and dead letters arriving, as a newcomer would see them. Its picture is the README's."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.console.conftest import Stack

pytestmark = [pytest.mark.kafka, pytest.mark.browser, pytest.mark.slow]

LINK = re.compile(r"console: (http://\S+/console/ticket/act_[\w-]+)")
NEWCOMERS_MINUTE_S = 60


def console_link(demo: subprocess.Popen[str], output: list[str]) -> str:
    """The sign-in link the demo prints once it has enrolled its members."""
    assert demo.stdout is not None
    deadline = time.monotonic() + NEWCOMERS_MINUTE_S
    while time.monotonic() < deadline:
        line = demo.stdout.readline()
        if not line and demo.poll() is not None:
            break
        output.append(line)
        found = LINK.search(line)
        if found:
            return found.group(1)
    pytest.fail("the demo printed no console link:\n" + "".join(output))


def test_the_demos_link_opens_a_console_where_stamps_rewards_and_dead_letters_flow(
    chrome: Any, stack: Stack
) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    started = time.monotonic()
    argv = [sys.executable, "-m", "autostamp", "demo", "--rate", "40", "--seed", "11"]
    demo = subprocess.Popen(
        argv, env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output: list[str] = []
    try:
        link = console_link(demo, output)
        chrome.get(link)
        assert chrome.current_url == f"{stack.url}/console/flow"
        assert chrome.find_element(By.TAG_NAME, "h1").text == "Live flow"

        def flowing(browser: Any) -> bool:
            figures = [
                int(browser.find_element(By.ID, f"total-{name}").text)
                for name in ("stamps", "rewards", "dead")
            ]
            return all(figure > 0 for figure in figures)

        left = NEWCOMERS_MINUTE_S - (time.monotonic() - started)
        # The live part is replaced as it refreshes: an element may go stale as it is read.
        WebDriverWait(
            chrome,
            max(left, 1),
            poll_frequency=0.5,
            ignored_exceptions=(StaleElementReferenceException,),
        ).until(flowing, "stamps, rewards and dead letters on the live flow within a minute")
        time.sleep(6)  # one more refresh, for a fuller picture
        stack.screenshot(chrome, "console")
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(60)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait()
    assert demo.stdout is not None
    with demo.stdout:
        output.append(demo.stdout.read())
    assert demo.returncode == 0, "".join(output)
