"""Publisher API benchmark: throughput and latency of stamp-collection get and list, driven by wrk.

The ledger is a scratch database on the server DATABASE_URL names, or on an embedded PostgreSQL
in a temporary directory (`autostamp.bench.database`). It is seeded with programs, members
enrolled in several of them, and stamps. The API runs as `autostamp api` runs it (one process
per core by default, sharing the port), with the rate limit raised out of the way.

The load comes from wrk, a C load generator (Debian's and Homebrew's package `wrk`), with
32 connections on one thread: it costs the server's cores far less than the requests it
sends, so the figures are the server's. Each request names a random collection (or member) of
the seeded ones, from a Lua script; the percentiles come from wrk's own latency histogram.
`/healthz` (no key, no database) runs first as the framework's ceiling on the same cores,
and each call's rate is printed as a ratio of it. Without wrk, an httpx client in this
process takes its place and the last line says `client=httpx`: its figures mostly measure
the client itself.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

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
CONNECTIONS = 32
PROGRAMS = 20
PROGRAMS_PER_MEMBER = 5
STAMPS_PER_COLLECTION = 3
MAX_REQUESTS = 200_000
GET = "/publisher.v1/wallet.stamp-collection/get"
LIST = "/publisher.v1/wallet.stamp-collection/list"
HEALTH = "/healthz"


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
class Figures:
    """One call under load: successful answers a second, latency percentiles, failures."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    failed: int


def run(quick: bool = False) -> None:
    plan = LoadPlan(200, 1.0, 3.0) if quick else LoadPlan(2000, 3.0, 10.0)
    wrk = _find_wrk()
    with scratch_database() as (url, where):
        seeded = _seed(url, plan.members)
        print(f"database={where}")
        print(f"members={plan.members} collections={len(seeded.collection_ids)}")
        print(f"stamps={len(seeded.collection_ids) * STAMPS_PER_COLLECTION}")
        load = " ".join(f"{figure:.2f}" for figure in os.getloadavg())
        print(f"connections={CONNECTIONS} cores={os.cpu_count()} load_average_before={load}")
        with _api_server(url) as (base_url, processes):
            print(f"api_processes={processes}")
            if wrk is None:
                client = "httpx"
                print("note=wrk not found (apt-get install wrk, or brew install wrk); httpx")
                print("note=the httpx client shares the cores with the server: lower bounds")
                results = asyncio.run(_drive_httpx(base_url, seeded, plan))
            else:
                client = "wrk"
                results = _drive_wrk(wrk, base_url, seeded, plan)
    _report(client, results)


def _find_wrk() -> str | None:
    """wrk's path; installed from the distribution's packages when we may and can."""
    found = shutil.which("wrk")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        print("note=installing wrk with apt-get", flush=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "wrk"],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        found = shutil.which("wrk")
    return found


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
def _api_server(url: str, extra_env: dict[str, str] | None = None) -> Iterator[tuple[str, str]]:
    """`autostamp api` on a free loopback port; yields its URL and its process count."""
    port = free_port()
    env = {
        # The throwaway database is a configured one: its API wants a key for webhook secrets.
        "AUTOSTAMP_SECRET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        **(extra_env or {}),
        **os.environ,
        "DATABASE_URL": url,
        "AUTOSTAMP_API_HOST": "127.0.0.1",
        "AUTOSTAMP_API_PORT": str(port),
        "AUTOSTAMP_API_RATE_LIMIT_PER_MINUTE": "100000000",
        "AUTOSTAMP_API_RATE_LIMIT_BURST": "100000000",
        "AUTOSTAMP_LOG_LEVEL": "warning",
    }
    processes = env.get("AUTOSTAMP_API_PROCESSES", "0")
    server = subprocess.Popen([sys.executable, "-m", "autostamp", "api"], env=env)
    try:
        wait_for_port("127.0.0.1", port, 60.0, "benchmark API server")
        yield f"http://127.0.0.1:{port}", processes if processes != "0" else "one per core"
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


_WRK_SCRIPT = """
local ids = {}
for line in io.lines(os.getenv("BENCH_IDS")) do ids[#ids + 1] = line end
local token = os.getenv("BENCH_TOKEN")
local template = os.getenv("BENCH_BODY")
wrk.method = os.getenv("BENCH_METHOD")
wrk.headers["Content-Type"] = "application/json"
if token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end
request = function()
  if template == "" then return wrk.format() end
  local body = string.gsub(template, "@ID@", ids[math.random(#ids)])
  return wrk.format(nil, nil, nil, body)
end
"""

# wrk's report of a run, one line that `_WRK_LINE` reads; every benchmark's script ends with it.
WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK requests=%d duration_us=%d non2xx=%d socket_errors=%d p50_us=%d p99_us=%d\\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""
_WRK_LINE = re.compile(
    r"WRK requests=(\d+) duration_us=(\d+) non2xx=(\d+) socket_errors=(\d+) "
    r"p50_us=(\d+) p99_us=(\d+)"
)


def _drive_wrk(wrk: str, base_url: str, seeded: Seeded, plan: LoadPlan) -> dict[str, Figures]:
    calls = {
        "healthz": ("GET", HEALTH, "", [""]),
        "get": ("POST", GET, '{"id":"@ID@"}', seeded.collection_ids),
        "list": ("POST", LIST, '{"member_id":"@ID@","pagination":{"limit":20}}', seeded.member_ids),
    }
    results = {}
    with tempfile.TemporaryDirectory(prefix="autostamp-wrk-") as folder:
        script = Path(folder) / "calls.lua"
        script.write_text(_WRK_SCRIPT + WRK_REPORT)
        for name, (method, path, body, ids) in calls.items():
            id_file = Path(folder) / f"{name}.ids"
            id_file.write_text("\n".join(ids) + "\n")
            env = {
                **os.environ,
                "BENCH_IDS": str(id_file),
                "BENCH_TOKEN": seeded.token if path != HEALTH else "",
                "BENCH_BODY": body,
                "BENCH_METHOD": method,
            }
            url = base_url + path
            _wrk(wrk, url, script, env, plan.warmup_s)
            results[name] = _wrk(wrk, url, script, env, plan.measure_s)
            print(
                f"{name}_requests={results[name].requests} {name}_failed={results[name].failed}",
                flush=True,
            )
    return results


def _wrk(
    wrk: str,
    url: str,
    script: Path,
    env: dict[str, str],
    seconds: float,
    connections: int = CONNECTIONS,
) -> Figures:
    argv = [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s", str(script), url]
    output = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    found = _WRK_LINE.search(output)
    if found is None:
        raise RuntimeError(f"wrk printed no summary:\n{output}")
    requests, duration_us, non2xx, socket_errors, p50_us, p99_us = map(int, found.groups())
    ok = requests - non2xx
    return Figures(
        rps=ok / (duration_us / 1e6),
        p50_ms=p50_us / 1000,
        p99_ms=p99_us / 1000,
        requests=requests,
        failed=non2xx + socket_errors,
    )


async def _drive_httpx(base_url: str, seeded: Seeded, plan: LoadPlan) -> dict[str, Figures]:
    rng = random.Random(SEED)
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    headers = {"Authorization": f"Bearer {seeded.token}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits) as client:

        def healthz() -> Awaitable[httpx.Response]:
            return client.get(HEALTH)

        def get() -> Awaitable[httpx.Response]:
            return client.post(GET, json={"id": rng.choice(seeded.collection_ids)})

        def list_() -> Awaitable[httpx.Response]:
            body = {"member_id": rng.choice(seeded.member_ids), "pagination": {"limit": 20}}
            return client.post(LIST, json=body)

        results = {}
        for name, call in (("healthz", healthz), ("get", get), ("list", list_)):
            await _load(call, plan.warmup_s)
            results[name] = await _load(call, plan.measure_s)
        return results


async def _load(call: Callable[[], Awaitable[httpx.Response]], seconds: float) -> Figures:
    latencies: list[float] = []
    failed = 0
    started = time.perf_counter()
    deadline = started + seconds

    async def connection() -> None:
        nonlocal failed
        while time.perf_counter() < deadline and len(latencies) + failed < MAX_REQUESTS:
            sent = time.perf_counter()
            response = await call()
            if response.status_code == 200:
                latencies.append(time.perf_counter() - sent)
            else:
                failed += 1

    await asyncio.gather(*(connection() for _ in range(CONNECTIONS)))
    elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return Figures(
        len(latencies) / elapsed, cuts[49] * 1000, cuts[98] * 1000, len(latencies), failed
    )


def _report(client: str, results: dict[str, Figures]) -> None:
    ceiling = results["healthz"].rps
    print(f"healthz_rps={ceiling:.0f} healthz_p99_ms={results['healthz'].p99_ms:.2f}")
    for name in ("get", "list"):
        print(f"{name}_vs_healthz={results[name].rps / ceiling:.2f}")
    get, list_ = results["get"], results["list"]
    print(
        f"api: client={client} get_rps={get.rps:.0f} get_p50_ms={get.p50_ms:.2f} "
        f"get_p99_ms={get.p99_ms:.2f} list_rps={list_.rps:.0f} list_p99_ms={list_.p99_ms:.2f} "
        f"connections={CONNECTIONS}"
    )
