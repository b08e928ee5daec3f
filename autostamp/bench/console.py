"""`autostamp bench console`: the console's pages under load, with 10,000 webhook deliveries.

On a scratch database (`autostamp.bench.database`) seeded as a busy instance would look to an
operator: an hour of live flow from two workers and their lag on four partitions, 20 programs,
1,000 dead letters, and one endpoint with 10,000 deliveries (every tenth dead, each with an
attempt). `autostamp api` serves it as in production; wrk (8 connections) sends a signed-in
session's cookie, for each page in turn. `/healthz` runs first on the same cores as the
ceiling, and each page's rate is printed as a ratio of it. The deliveries are read at the
first page and at a page 9,950 deliveries in, which paging by key must serve as fast.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, create_engine, insert, text
from sqlalchemy.ext.asyncio import create_async_engine

from autostamp.bench.api import WRK_REPORT, Figures, _api_server, _find_wrk, _program_row, _wrk
from autostamp.bench.database import scratch_database
from ledger import console_sessions, keys
from ledger.database import transaction
from ledger.pages import Position
from ledger.schema import Program
from publisher_api.pagination import encode

CONNECTIONS = 8
DELIVERIES = 10_000
_WRK_SCRIPT = """
wrk.method = "GET"
local cookie = os.getenv("BENCH_COOKIE")
if cookie ~= "" then wrk.headers["Cookie"] = "autostamp_console=" .. cookie end
"""


def run(quick: bool = False, **_: object) -> None:
    warmup_s, measure_s = (1.0, 2.0) if quick else (2.0, 8.0)
    wrk = _find_wrk()
    if wrk is None:
        raise SystemExit("bench console needs wrk (apt-get install wrk, or brew install wrk)")
    with scratch_database() as (url, where):
        deep = _seed(url)
        session = asyncio.run(_session(url))
        print(f"database={where} deliveries={DELIVERIES} connections={CONNECTIONS}")
        pages = {
            "healthz": ("/healthz", ""),
            "flow": ("/console/flow", session),
            "programs": ("/console/programs", session),
            "deliveries": ("/console/webhooks/ep_busy", session),
            "deliveries_deep": (f"/console/webhooks/ep_busy?cursor={deep}", session),
            "dead_letters": ("/console/dead-letters", session),
        }
        results: dict[str, Figures] = {}
        with _api_server(url) as (base_url, processes), tempfile.TemporaryDirectory() as folder:
            print(f"api_processes={processes}")
            script = Path(folder) / "console.lua"
            script.write_text(_WRK_SCRIPT + WRK_REPORT)
            for name, (path, cookie) in pages.items():
                env = {**os.environ, "BENCH_COOKIE": cookie}
                try:
                    _wrk(wrk, base_url + path, script, env, warmup_s, CONNECTIONS)
                    figures = _wrk(wrk, base_url + path, script, env, measure_s, CONNECTIONS)
                except subprocess.CalledProcessError as exc:
                    raise RuntimeError(f"wrk failed:\n{exc.stderr}") from exc
                results[name] = figures
                print(
                    f"{name}_rps={figures.rps:.0f} {name}_p99_ms={figures.p99_ms:.1f} "
                    f"{name}_failed={figures.failed}",
                    flush=True,
                )
    ceiling = results["healthz"].rps
    for name in pages:
        if name != "healthz":
            print(f"{name}_vs_healthz={results[name].rps / ceiling:.2f}")
    first, deep_page, flow = results["deliveries"], results["deliveries_deep"], results["flow"]
    print(
        f"console: deliveries_rps={first.rps:.0f} deliveries_p99_ms={first.p99_ms:.1f} "
        f"deliveries_deep_p99_ms={deep_page.p99_ms:.1f} flow_rps={flow.rps:.0f} "
        f"flow_p99_ms={flow.p99_ms:.1f}"
    )


def _seed(url: str) -> str:
    """Seed the ledger; the cursor of the page that starts 9,950 deliveries in."""
    engine = create_engine(url)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    try:
        with engine.begin() as conn:
            for n in range(20):
                conn.execute(insert(Program).values(**_program_row(f"lp_bench_{n:03d}")))
            _deliveries(conn)
            conn.execute(
                text(
                    "INSERT INTO flow_minutes (minute, worker, applied, unmatched, stamps, "
                    "rewards, dead_lettered) SELECT :now - m * interval '1 minute', 'w' || w, "
                    "9000, 1000, 8500, 400, 3 FROM generate_series(0, 59) AS m, "
                    "generate_series(1, 2) AS w"
                ),
                {"now": now},
            )
            conn.execute(
                text(
                    "INSERT INTO consumer_lags (partition, lag, worker, measured_at) "
                    "SELECT p, p * 10, 'w1', :now FROM generate_series(0, 3) AS p"
                ),
                {"now": now},
            )
            conn.execute(
                text(
                    "INSERT INTO dead_letters (source_topic, source_partition, source_offset, "
                    "item, key, value, size, sha256, reason) SELECT 'transactions', 0, n, -1, "
                    "'m', '{not json', 9, repeat('0', 64), 'not JSON: expecting a value' "
                    "FROM generate_series(1, 1000) AS n"
                )
            )
            row = conn.execute(
                text(
                    "SELECT created_at, id FROM webhook_deliveries WHERE endpoint_id = 'ep_busy' "
                    "ORDER BY created_at DESC, id DESC OFFSET :n LIMIT 1"
                ),
                {"n": DELIVERIES - 51},
            ).one()
        with engine.begin() as conn:
            # Statistics, as autovacuum keeps them on a running instance.
            conn.execute(text("ANALYZE"))
    finally:
        engine.dispose()
    # The console lists deliveries newest first unless asked otherwise.
    return encode("console-deliveries-newest", Position(row.created_at, row.id))


def _deliveries(conn: Connection) -> None:
    conn.execute(
        text(
            "INSERT INTO webhook_endpoints (id, url, event_types, secret) VALUES "
            "('ep_busy', 'https://hooks.example.com/busy', '[\"stamp.created\"]', 'sealed.bench')"
        )
    )
    conn.execute(
        text(
            "INSERT INTO webhook_messages (id, event_type, body, created_at) "
            "SELECT 'msg_' || n, 'stamp.created', '{}', now() - n * interval '1 second' "
            "FROM generate_series(1, :n) AS n"
        ),
        {"n": DELIVERIES},
    )
    conn.execute(
        text(
            "INSERT INTO webhook_deliveries (message_id, endpoint_id, status, attempts, "
            "created_at) SELECT 'msg_' || n, 'ep_busy', "
            "CASE WHEN n % 10 = 0 THEN 'dead' ELSE 'delivered' END, 1, "
            "now() - n * interval '1 second' FROM generate_series(1, :n) AS n"
        ),
        {"n": DELIVERIES},
    )
    conn.execute(
        text(
            "INSERT INTO webhook_attempts (delivery_id, attempted_at, status_code, latency_ms, "
            "response_snippet) SELECT id, created_at, CASE status WHEN 'dead' THEN 500 ELSE 200 "
            "END, 30, 'ok' FROM webhook_deliveries"
        )
    )


async def _session(url: str) -> str:
    engine = create_async_engine(url)
    try:
        async with transaction(engine) as conn:
            issued = await keys.create_key(conn, "benchmark", keys.Scope.ADMIN)
            return await console_sessions.sign_in(conn, issued.token, datetime.now(UTC))
    finally:
        await engine.dispose()
