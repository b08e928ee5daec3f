"""What the worker made of the programs topic: the programs and refusals in the ledger, and
its count of definitions by outcome."""

from __future__ import annotations

from tests.streams.conftest import Ledger
from tests.streams.worker import WorkerProcess, scrape, wait_for


def programs(ledger: Ledger) -> list[str]:
    return [r.id for r in ledger.rows("SELECT id FROM programs ORDER BY id")]


def refusals(ledger: Ledger) -> list[tuple[bytes, str]]:
    rows = ledger.rows("SELECT key, reason FROM dead_letters ORDER BY source_offset")
    return [(bytes(r.key), r.reason) for r in rows]


def until_judged(ledger: Ledger, program_id: str, worker: WorkerProcess, refused: int = 0) -> None:
    """Wait until `program_id` is applied and `refused` definitions are dead-lettered. The
    worker judges definitions in order, a batch in one transaction, so the first implies the
    second; waiting for both says so without relying on it."""
    wait_for(
        lambda: program_id in programs(ledger) and len(refusals(ledger)) >= refused,
        60,
        f"{program_id} applied and {refused} refused",
        worker.log,
    )


def held(ledger: Ledger, program_id: str) -> tuple[str, int]:
    """The status and version of a program as the ledger holds it."""
    rows = ledger.rows("SELECT status, version FROM programs WHERE id = :id", id=program_id)
    return (rows[0].status, rows[0].version) if rows else ("absent", 0)


def definitions_judged(worker: WorkerProcess, outcome: str) -> float:
    """How many definitions the worker has judged with `outcome` since it started."""
    port = worker.env["AUTOSTAMP_METRICS_WORKER_PORT"]
    name = f'autostamp_worker_program_definitions_total{{outcome="{outcome}"}}'
    return scrape(port).get(name, 0.0)
