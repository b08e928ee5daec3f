"""`autostamp bench ingest`: HTTP ingestion, batches of 500 transactions posted by wrk.

On a scratch database (`autostamp.bench.database`) and the embedded broker (or the one
KAFKA_BOOTSTRAP_SERVERS names), `autostamp api` runs as in production with an ingest key;
wrk posts JSON arrays of 500 transactions, every request with ids of its own, from a Lua
script, over 8 connections. Each answer comes only once the broker acknowledged its
transactions, so the rate is that of transactions on the topic. No worker runs: this
measures the API and the produce, not the stamping (`autostamp bench pipeline` does).
Without wrk an httpx client takes its place, and the figures are lower bounds.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import secrets
import subprocess
import tempfile
import uuid
from contextlib import ExitStack
from pathlib import Path

import httpx
import orjson
from sqlalchemy.ext.asyncio import create_async_engine

from autostamp.bench.api import WRK_REPORT, Figures, LoadPlan, _api_server, _find_wrk, _load, _wrk
from autostamp.bench.database import scratch_database
from autostamp.bench.pipeline import _broker, _topics
from autostamp.topics import ensure_topics
from ledger import keys
from ledger.database import transaction

BATCH = 500
MEMBERS = 2000
CONNECTIONS = 8
PATH = "/ingest.v1/transactions"

_WRK_SCRIPT = """
local token = os.getenv("BENCH_TOKEN")
local template = io.open(os.getenv("BENCH_BODY")):read("*a")
local run = os.getenv("BENCH_RUN")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. token
local n = 0
request = function()
  n = n + 1
  local body = string.gsub(template, "@N@", run .. "-" .. n)
  return wrk.format(nil, nil, nil, body)
end
"""


def batch_template() -> str:
    """A JSON array of BATCH transactions whose ids hold `@N@`, replaced per request."""
    items = [
        {
            "id": f"b@N@-{i}",
            "type": "clearing",
            "member_id": f"m_{i * 7 % MEMBERS:06d}",
            "amount": 450 + i,
            "currency": "GBP",
            "merchant": {"id": "mer_bench", "name": "Bench Coffee", "mcc": "5814"},
            "card": {"id": f"card_{i}", "scheme": "visa"},
            "occurred_at": "2026-03-02T09:15:00+00:00",
        }
        for i in range(BATCH)
    ]
    return orjson.dumps(items).decode()


def run(quick: bool = False, **_: object) -> None:
    plan = LoadPlan(MEMBERS, 1.0 if quick else 3.0, 3.0 if quick else 15.0)
    wrk = _find_wrk()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="autostamp-ingest-")))
        url, where = stack.enter_context(scratch_database())
        bootstrap = _broker(stack, tmp)
        topics = _topics(uuid.uuid4().hex[:8])
        ensure_topics({"bootstrap.servers": bootstrap}, topics)
        token = asyncio.run(_ingest_key(url))
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "AUTOSTAMP_TOPIC_TRANSACTIONS": topics.transactions,
            "AUTOSTAMP_SECRET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            "AUTOSTAMP_STATE_DIR": str(tmp / "state"),
        }
        print(f"database={where} batch={BATCH} connections={CONNECTIONS} cores={os.cpu_count()}")
        base_url, processes = stack.enter_context(_api_server(url, env))
        print(f"api_processes={processes}")
        if wrk is None:
            client = "httpx"
            print("note=wrk not found (apt-get install wrk); httpx, figures are lower bounds")
            figures = asyncio.run(_drive_httpx(base_url, token, plan))
        else:
            client = "wrk"
            figures = _drive_wrk(wrk, base_url + PATH, token, plan, tmp)
    print(f"client={client} requests={figures.requests} failed={figures.failed}")
    print(f"p50_ms={figures.p50_ms:.1f}")
    print(f"ingest: tx_per_s={figures.rps * BATCH:.0f} p99_ms={figures.p99_ms:.0f}")


async def _ingest_key(url: str) -> str:
    engine = create_async_engine(url)
    try:
        async with transaction(engine) as conn:
            return (await keys.create_key(conn, "benchmark", keys.Scope.INGEST)).token
    finally:
        await engine.dispose()


def _drive_wrk(wrk: str, url: str, token: str, plan: LoadPlan, folder: Path) -> Figures:
    script, body = folder / "ingest.lua", folder / "batch.json"
    script.write_text(_WRK_SCRIPT + WRK_REPORT)
    body.write_text(batch_template())
    env = {**os.environ, "BENCH_TOKEN": token, "BENCH_BODY": str(body), "BENCH_RUN": "warm"}
    _wrk_run(wrk, url, script, env, plan.warmup_s)
    return _wrk_run(wrk, url, script, {**env, "BENCH_RUN": "run"}, plan.measure_s)


def _wrk_run(wrk: str, url: str, script: Path, env: dict[str, str], seconds: float) -> Figures:
    try:
        return _wrk(wrk, url, script, env, seconds, CONNECTIONS)
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"wrk failed:\n{exc.stderr}") from exc


async def _drive_httpx(base_url: str, token: str, plan: LoadPlan) -> Figures:
    template = batch_template()
    counter = itertools.count()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=CONNECTIONS)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits) as client:

        def post() -> asyncio.Future[httpx.Response]:
            body = template.replace("@N@", str(next(counter)))
            return asyncio.ensure_future(client.post(PATH, content=body, timeout=60))

        await _load(post, plan.warmup_s)
        return await _load(post, plan.measure_s)
