"""Topic names of one test, so tests sharing a broker never read each other's messages."""

from __future__ import annotations

import uuid

from autostamp.settings import TopicSettings


def topic_names(partitions: int = 2) -> TopicSettings:
    suffix = uuid.uuid4().hex[:8]
    return TopicSettings(
        transactions=f"transactions-{suffix}",
        dead_letter=f"transactions-dead-letter-{suffix}",
        programs=f"programs-{suffix}",
        payouts=f"payouts-{suffix}",
        partitions=partitions,
    )
