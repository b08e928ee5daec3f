"""`autostamp adjust`: add or take away stamps on a collection, as the support API call does.

An adjustment made here records no API key (`made_with_key` is null): the operator holds
the database, not a key.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from autostamp.commands import run_in_transaction
from ledger.adjustments import AdjustmentRecord, adjust_collection


def adjust(
    stamp_collection_id: Annotated[str, typer.Argument(help="The collection, sc_...")],
    delta: Annotated[
        int, typer.Argument(help="Stamps to add (2) or take away (-2); at most 100 either way.")
    ],
    reason: Annotated[str, typer.Option(help="Why, in 1 to 500 characters.")],
    idempotency_key: Annotated[
        str, typer.Option(help="Unique per adjustment: running it again changes nothing.")
    ],
) -> None:
    """Add or take away stamps by the stamping rules, with a reason, exactly once per key."""
    record: AdjustmentRecord = run_in_transaction(
        lambda conn: adjust_collection(
            conn,
            stamp_collection_id,
            delta,
            reason,
            idempotency_key,
            None,
            datetime.now(UTC),
        )
    )
    made = "already made" if record.replayed else "made"
    rewards = f" rewards={','.join(record.reward_ids)}" if record.reward_ids else ""
    typer.echo(
        f"adjustment {record.id} {made}: delta={record.delta:+d} "
        f"unredeemed_purchases={record.unredeemed_purchases} owed_stamps={record.owed_stamps} "
        f"cycle={record.cycle}{rewards}"
    )
