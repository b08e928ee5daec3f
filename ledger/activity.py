"""What the ledger gained since a moment: stamps, voids, rewards and dead letters, for a tally.

Each count walks an index by time (`ix_stamps_created`, `ix_stamps_voided`,
`ix_rewards_created`), so a tally costs little however old the ledger is; dead letters are
few, and are counted by a scan.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True)
class Activity:
    """Rows made since a moment: stamps (voided ones too) and rewards of some programs, and
    dead letters from one topic; with the first stamp's and the first reward's times."""

    stamps: int
    voided: int
    rewards: int
    dead_letters: int
    first_stamp_at: datetime | None
    first_reward_at: datetime | None


_ACTIVITY = """
WITH programs AS (
    SELECT json_array_elements_text(CAST(:programs AS json)) AS id
), stamped AS (
    SELECT s.created_at FROM stamps s JOIN stamp_collections c ON c.id = s.collection_id
    WHERE s.created_at >= :since AND c.program_id IN (SELECT id FROM programs)
), rewarded AS (
    SELECT r.created_at FROM rewards r JOIN stamp_collections c ON c.id = r.collection_id
    WHERE r.created_at >= :since AND c.program_id IN (SELECT id FROM programs)
)
SELECT
    (SELECT count(*) FROM stamped) AS stamps,
    (SELECT min(created_at) FROM stamped) AS first_stamp_at,
    (SELECT count(*) FROM stamps s JOIN stamp_collections c ON c.id = s.collection_id
     WHERE s.status = 'voided' AND s.voided_at >= :since
       AND c.program_id IN (SELECT id FROM programs)) AS voided,
    (SELECT count(*) FROM rewarded) AS rewards,
    (SELECT min(created_at) FROM rewarded) AS first_reward_at,
    (SELECT count(*) FROM dead_letters
     WHERE created_at >= :since AND source_topic = :topic) AS dead_letters
"""


async def activity_since(
    conn: AsyncConnection, since: datetime, program_ids: Sequence[str], topic: str
) -> Activity:
    """Stamps, voids and rewards of `program_ids`, and dead letters of `topic`, since `since`."""
    if since.tzinfo is None:
        raise ValueError("since must carry its UTC offset")
    params = {"since": since, "programs": json.dumps(list(program_ids)), "topic": topic}
    row = (await conn.execute(text(_ACTIVITY), params)).one()
    return Activity(
        stamps=row.stamps,
        voided=row.voided,
        rewards=row.rewards,
        dead_letters=row.dead_letters,
        first_stamp_at=row.first_stamp_at,
        first_reward_at=row.first_reward_at,
    )
