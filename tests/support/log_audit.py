"""Every log of a test run is searched for secrets, card numbers and marked personal values.

The rule is `ledger.redaction`'s: a line that redaction would change holds a secret or a
card number. Personal values cannot be found by their form, so tests that send members',
cards' or merchants' values down a path that logs or refuses mark them with `PERSONAL_MARK`;
no line may hold it. Searched: what the test process logs (at INFO and above, through the
redaction that every autostamp process installs) and every `*.log` file the tests' servers,
workers and brokers wrote under the run's temporary folder.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from autostamp.logs import LOG_FORMAT, install_redaction
from ledger.redaction import redact

PERSONAL_MARK = "S3NT1NEL"
"""Put in a member, card or merchant value that must never reach a log or a refusal."""
SHOWN_AT_MOST = 20


def offending_lines(path: Path) -> list[str]:
    """The lines of `path` that hold a secret, a card number or a marked personal value."""
    found = []
    with path.open(errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            if PERSONAL_MARK in line or redact(line) != line:
                found.append(f"{path}:{number}: {line.strip()[:300]}")
    return found


@pytest.fixture(scope="session", autouse=True)
def log_audit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Log the whole run to a file, then fail it if any log of it holds what must not."""
    install_redaction()
    base = tmp_path_factory.getbasetemp()
    handler = logging.FileHandler(base / "test-run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(min(level, logging.INFO) if level else logging.INFO)
    yield
    root.removeHandler(handler)
    root.setLevel(level)
    handler.close()
    found = [line for log in sorted(base.rglob("*.log")) for line in offending_lines(log)]
    if found:
        shown = "\n".join(found[:SHOWN_AT_MOST])
        pytest.fail(f"{len(found)} log lines hold a secret or a personal value:\n{shown}")
