"""The database a benchmark runs on: a migrated scratch database, dropped afterwards."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine

from autostamp.embedded import EmbeddedPostgres, free_port, throwaway_database
from ledger import migrate


@contextlib.contextmanager
def scratch_database() -> Iterator[tuple[str, str]]:
    """Its URL and where it is: on DATABASE_URL's server, else an embedded PostgreSQL."""
    configured = os.environ.get("DATABASE_URL")
    with contextlib.ExitStack() as stack:
        if configured:
            server, where = configured, "scratch database on DATABASE_URL's server"
        else:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="autostamp-bench-")))
            postgres = EmbeddedPostgres(root / "postgres", free_port())
            postgres.start()
            stack.callback(postgres.stop)
            server, where = postgres.url(), "embedded"
        url = stack.enter_context(throwaway_database(server, "autostamp_bench"))
        engine = create_engine(url)
        try:
            migrate.upgrade(engine)
        finally:
            engine.dispose()
        yield url, where
