"""How far a consumer group has read a test's topics, on the embedded broker."""

from __future__ import annotations

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from tests.streams.worker import wait_for


def topic_ends(bootstrap: str, topic: str, messages: int) -> dict[int, int]:
    """The offset after each partition's last message, found by reading all `messages`.

    Not the high watermark: Tansu answers ListOffsets(latest) with the base offset of the
    last record batch, plus one, however many records that batch holds.
    """
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": "fault-ends"})
    partitions = reader.list_topics(topic, timeout=10).topics[topic].partitions
    reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    ends, seen = dict.fromkeys(partitions, 0), 0

    def read_all() -> bool:
        nonlocal seen
        for message in reader.consume(1000, 0.5):
            offset = message.offset()
            if message.error() is None and offset is not None:
                ends[message.partition()] = offset + 1
                seen += 1
        return seen >= messages

    try:
        wait_for(read_all, 30, f"{messages} messages on {topic}")
    finally:
        reader.close()
    return ends


def behind(bootstrap: str, group: str, topic: str, ends: dict[int, int]) -> int:
    """Messages before `ends` that `group` has not committed, read from outside the group."""
    # Never subscribed: this client reads the group's offsets and is no member of it.
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        wanted = [TopicPartition(topic, p) for p in ends]
        committed = consumer.committed(wanted, timeout=10)
        # No commit yet is a negative sentinel.
        return sum(ends[c.partition] - max(c.offset, 0) for c in committed)
    finally:
        consumer.close()
