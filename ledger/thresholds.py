"""What lowering a program's threshold does to its collections, at the moment it is applied."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from ledger.effects import reward_for, reward_triggered
from ledger.events import OutboxEvent
from ledger.model import CollectionView, NewReward, StampRow
from rules import ProgramDefinition


@dataclass(frozen=True)
class Settled:
    """A collection after a lowered threshold: its new count, and the rewards that fell due."""

    collection: CollectionView
    rewards: tuple[NewReward, ...]
    events: tuple[OutboxEvent, ...]


def settle(
    program: ProgramDefinition,
    collection: CollectionView,
    live: Sequence[StampRow],
    now: datetime,
) -> Settled:
    """Reward every cycle the count completes under the program's (lowered) threshold.

    `live` is the collection's live stamps, oldest first; the last `unredeemed_purchases` of
    them are the current cycle's. One reward per completed cycle, each paid for the stamp that
    completes it under the new threshold; what is left over is carried into the next cycle.
    """
    threshold = program.qualifying_threshold
    tally, cycles = collection.tally.settle(threshold)
    if not cycles:
        return Settled(collection, (), ())
    current = list(live)[-collection.tally.unredeemed_purchases :]
    settled = replace(collection, tally=tally)
    rewards, events = [], []
    for n, cycle in enumerate(cycles, start=1):
        stamp = current[min(n * threshold, len(current)) - 1]
        reward = reward_for(program, collection.id, stamp, cycle)
        rewards.append(reward)
        events.append(reward_triggered(reward, settled, program, stamp, now))
    return Settled(settled, tuple(rewards), tuple(events))
