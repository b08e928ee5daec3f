"""Publisher API benchmark: throughput and latency of stamp-collection get and list over HTTP.

The ledger is a scratch database on the server DATABASE_URL names, or on an embedded PostgreSQL
in a temporary directory (`autostamp.bench.database`). It is seeded with programs, members
enrolled in several of them, and stamps. The API runs under uvicorn in its own process on
127.0.0.1, built as `autostamp api` builds it (pooled engine, per-request key check, rate
limit raised out of the way); an httpx client drives it from this process with a fixed
number of concurrent tasks, bounded in time and in request count. On a 2-core machine the
client competes with the server and PostgreSQL for the CPU, so the figures are lower bounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from sqlalchemy import create_engine, insert
from sqlalchemy.ext.asyncio import create_async_engine

from autostamp.bench.database import scratch_database
from autostamp.embedded import free_port, wait_for_port
from ledger import keys
from ledger.database import transaction
from ledger.ids import new_id
from ledger.schema import Program, Stamp, StampCollection
from rules.samples import sample_program

SEED = 4217
CONCURRENCY = 16
PROGRAMS = 20
PROGRAMS_PER_MEMBER = 5
STAMPS_PER_COLLECTION = 3
MAX_REQUESTS = 200_000


@dataclass(frozen=True)
class LoadPlan:
    """How big and how long one run is."""

    members: int
    warmup_s: float
    measure_s: float


@dataclass(frozen=True)
class Seeded:
    """What the load picks from."""

    token: str
    collection_ids: list[str]
    member_ids: list[str]


@dataclass(frozen=True)
class Result:
    """Latencies of the successful requests of one call, and how many failed."""

    latencies_s: list[float]
    errors: int
    elapsed_s: float


def run(quick: bool = False) -> None:
    plan = (
        LoadPlan(members=200, warmup_s=0.5, measure_s=1.5) if quick else LoadPlan(2000, 2.0, 10.0)
    )
    with scratch_database() as (url, where):
        seeded = _seed(url, plan.members)
        print(f"database={where}")
        print(f"members={plan.members} collections={len(seeded.collection_ids)}")
        print(f"stamps={len(seeded.collection_ids) * STAMPS_PER_COLLECTION}")
        load = " ".join(f"{figure:.2f}" for figure in os.getloadavg())
        print(f"concurrency={CONCURRENCY} cores={os.cpu_count()} load_average_before={load}")
        print("note=the load generator shares the CPU cores with the server and PostgreSQL")
        with _api_server(url) as base_url:
            results = asyncio.run(_drive(base_url, seeded, plan))
    _report(results)


def _seed(url: str, members: int) -> Seeded:
    rng = random.Random(SEED)
    program_ids = [f"lp_bench_{n:03d}" for n in range(PROGRAMS)]
    member_ids = [f"m_{n:06d}" for n in range(members)]
    enrollments = [
        (new_id("sc"), program, member)
        for member in member_ids
        for program in rng.sample(program_ids, PROGRAMS_PER_MEMBER)
    ]
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(Program), [_program_row(p) for p in program_ids])
        conn.execute(
            insert(StampCollection),
            [{"id": c, "program_id": p, "member_id": m} for c, p, m in enrollments],
        )
        stamps = [_stamp_row(c, n) for c, _, _ in enrollments for n in range(STAMPS_PER_COLLECTION)]
        conn.execute(insert(Stamp), stamps)
    engine.dispose()
    token = asyncio.run(_issue_key(url))
    return Seeded(token, [c for c, _, _ in enrollments], member_ids)


def _program_row(program_id: str) -> dict[str, object]:
    reward = {"type": "fixed-reward", "amount": 500, "currency": "GBP"}
    return sample_program(program_id, reward=reward)


def _stamp_row(collection_id: str, n: int) -> dict[str, object]:
    return {
        "collection_id": collection_id,
        "purchase_id": f"{collection_id}-p{n}",
        "transaction_id": f"{collection_id}-t{n}",
        "cycle": 1,
        "amount": 450,
        "currency": "GBP",
        "merchant_id": "merchant-1",
        "merchant_name": "Corner Coffee",
        "occurred_at": datetime(2025, 1, 1, tzinfo=UTC),
    }


async def _issue_key(url: str) -> str:
    engine = create_async_engine(url)
    try:
        async with transaction(engine) as conn:
            return (await keys.create_key(conn, "benchmark", keys.Scope.READ)).token
    finally:
        await engine.dispose()


@contextlib.contextmanager
def _api_server(url: str) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "AUTOSTAMP_DATABASE_POOL_SIZE": str(CONCURRENCY),
        "AUTOSTAMP_API_RATE_LIMIT_PER_MINUTE": "100000000",
        "AUTOSTAMP_API_RATE_LIMIT_BURST": "100000000",
    }
    argv = [sys.executable, "-m", "autostamp.bench.api", str(port)]
    server = subprocess.Popen(argv, env=env)
    try:
        wait_for_port("127.0.0.1", port, 60.0, "benchmark API server")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _serve(port: int) -> None:
    """The server process: the API as `autostamp api` builds it, broker probe left out."""
    import uvicorn

    from autostamp.settings import Settings
    from autostamp.wiring import build_api

    async def broker_not_probed() -> bool:
        return True

    app = build_api(Settings(), broker_not_probed)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


async def _drive(base_url: str, seeded: Seeded, plan: LoadPlan) -> dict[str, Result]:
    rng = random.Random(SEED)
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    headers = {"Authorization": f"Bearer {seeded.token}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits) as client:

        def get() -> Awaitable[httpx.Response]:
            body = {"id": rng.choice(seeded.collection_ids)}
            return client.post("/publisher.v1/wallet.stamp-collection/get", json=body)

        def list_() -> Awaitable[httpx.Response]:
            body = {"member_id": rng.choice(seeded.member_ids), "pagination": {"limit": 20}}
            return client.post("/publisher.v1/wallet.stamp-collection/list", json=body)

        results = {}
        for name, call in (("get", get), ("list", list_)):
            await _load(call, plan.warmup_s)
            results[name] = await _load(call, plan.measure_s)
        return results


async def _load(call: Callable[[], Awaitable[httpx.Response]], seconds: float) -> Result:
    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()
    deadline = started + seconds

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < deadline and len(latencies) + errors < MAX_REQUESTS:
            sent = time.perf_counter()
            response = await call()
            if response.status_code == 200:
                latencies.append(time.perf_counter() - sent)
            else:
                errors += 1

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return Result(latencies, errors, time.perf_counter() - started)


def _report(results: dict[str, Result]) -> None:
    figures: list[str] = []
    for name, result in results.items():
        rps = len(result.latencies_s) / result.elapsed_s
        cuts = statistics.quantiles(result.latencies_s, n=100, method="inclusive")
        p50, p99 = cuts[49] * 1000, cuts[98] * 1000
        print(f"{name}_requests={len(result.latencies_s)} {name}_errors={result.errors}")
        figures += [f"{name}_rps={rps:.0f}", f"{name}_p50_ms={p50:.2f}", f"{name}_p99_ms={p99:.2f}"]
    print("api: " + " ".join(figures))


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
