"""`autostamp reconcile`, run as an operator would, for the tests that inject faults."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson


def reconcile(database_url: str) -> dict[str, object]:
    """Run `autostamp reconcile --json` on the database; its JSON and exit code must agree."""
    done = subprocess.run(
        [sys.executable, "-m", "autostamp", "reconcile", "--json"],
        env=os.environ | {"DATABASE_URL": database_url},
        capture_output=True,
        timeout=120,
        check=False,
    )
    result: dict[str, object] = orjson.loads(done.stdout)
    assert done.returncode == (1 if result["differences"] else 0), done.stderr.decode()
    return result


def assert_reconciled(database_url: str) -> dict[str, object]:
    """The ledger's rows agree with its counters and rewards: no difference at all."""
    result = reconcile(database_url)
    assert result["differences"] == [], result["differences"]
    return result
