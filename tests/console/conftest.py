"""The console in a real browser: headless Chromium from the system's packages, driven by
Selenium, against a real API process, a real worker and the test database and broker."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from autostamp.embedded import free_port, wait_for_port
from autostamp.settings import TopicSettings
from tests.streams.conftest import Ledger
from tests.streams.conftest import ledger as ledger
from tests.streams.worker import WorkerProcess, worker_environment
from tests.webhooks.support import TEST_KEY

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
DRIVER = "chromedriver"
REQUIRED = "AUTOSTAMP_TEST_REQUIRE_BROWSER"
"""Set (as CI does) to fail, rather than skip, where no browser is installed."""


def _browser_binaries() -> tuple[str, str] | None:
    browser = next((found for name in CHROMIUM if (found := shutil.which(name))), None)
    driver = shutil.which(DRIVER)
    return (browser, driver) if browser and driver else None


@pytest.fixture
def chrome(tmp_path: Path) -> Iterator[object]:
    """A headless Chromium; nothing is downloaded: the system's browser and driver, or skip."""
    found = _browser_binaries()
    if found is None:
        why = "no chromium and chromedriver here (apt-get install chromium chromium-driver)"
        if os.environ.get(REQUIRED) == "1":
            pytest.fail(why)
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = found
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    # No driver log: it would hold the keys the tests type.
    service = Service(executable_path=driver)
    session = webdriver.Chrome(options=options, service=service)
    session.set_page_load_timeout(30)
    session.implicitly_wait(10)  # a page a click leads to may still be loading
    try:
        yield session
    finally:
        session.quit()


@dataclass
class Stack:
    """The processes a console test talks to, and where."""

    url: str
    worker: WorkerProcess
    env: dict[str, str]
    api_log: Path
    shots: Path

    def screenshot(self, browser: object, name: str) -> Path:
        """Check the page is accessible, then save what the browser shows under the test's
        folder; also to the folder named by AUTOSTAMP_CONSOLE_SCREENSHOTS, to refresh the
        documentation's pictures."""
        assert_accessible(browser)
        path = self.shots / f"{name}.png"
        assert browser.save_screenshot(str(path))  # type: ignore[attr-defined]
        wanted = os.environ.get("AUTOSTAMP_CONSOLE_SCREENSHOTS")
        if wanted:
            shutil.copy(path, Path(wanted) / path.name)
        return path


AXE = Path(__file__).with_name("axe.min.js")
"""axe-core (MPL-2.0, Deque Systems), the WCAG checker of browsers' developer tools."""


def assert_accessible(browser: Any) -> None:
    """No WCAG 2.1 A or AA violation that axe-core finds on the page as it is now."""
    if not browser.execute_script("return typeof window.axe === 'object'"):
        browser.execute_script(AXE.read_text())
    browser.set_script_timeout(30)
    result = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})"
        ".then(r => done(r.violations.map(v => [v.id, v.impact, v.help, "
        "v.nodes.map(n => n.target.join(' ')).slice(0, 3)])))"
        ".catch(e => done([['axe failed', 'error', String(e), []]]));"
    )
    assert result == [], f"{browser.current_url}: {result}"


@pytest.fixture
def stack(
    engine: Engine,
    async_engine: AsyncEngine,
    database_url: str,
    kafka_bootstrap: str,
    topics: TopicSettings,
    tmp_path: Path,
) -> Iterator[Stack]:
    """A worker and a one-process API on the test's database and topics."""
    env = worker_environment(database_url, kafka_bootstrap, topics) | {
        "AUTOSTAMP_SECRET_KEY": TEST_KEY,
        "AUTOSTAMP_API_HOST": "127.0.0.1",
        "AUTOSTAMP_API_PORT": str(free_port()),
        "AUTOSTAMP_API_PROCESSES": "1",
    }
    worker = WorkerProcess(env, tmp_path / "worker.log")
    worker.start()
    api_log = tmp_path / "api.log"
    with api_log.open("wb") as output:
        api = subprocess.Popen(
            [sys.executable, "-m", "autostamp", "api"], env=env, stdout=output, stderr=output
        )
    shots = tmp_path / "screenshots"
    shots.mkdir()
    try:
        port = int(env["AUTOSTAMP_API_PORT"])
        wait_for_port("127.0.0.1", port, 60.0, "API")
        yield Stack(f"http://127.0.0.1:{port}", worker, env, api_log, shots)
    finally:
        api.terminate()
        api.wait(30)
        worker.stop()


__all__ = ["Ledger", "Stack", "chrome", "ledger", "stack"]
