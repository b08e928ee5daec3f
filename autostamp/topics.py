"""Creates the Kafka topics autostamp uses, with confluent-kafka's admin client."""

from __future__ import annotations

import logging
from typing import Any

from autostamp.settings import TopicSettings
from ledger.errors import BrokerError

log = logging.getLogger(__name__)


def topic_specs(topics: TopicSettings) -> dict[str, tuple[int, dict[str, str]]]:
    """Name -> (partitions, config) of every topic, the program topic compacted."""
    compacted = {"cleanup.policy": "compact"}
    return {
        topics.transactions: (topics.partitions, {}),
        topics.dead_letter: (topics.partitions, {}),
        topics.payouts: (topics.partitions, {}),
        topics.programs: (1, compacted),
    }


def ensure_topics(config: dict[str, Any], topics: TopicSettings, timeout_s: float = 15.0) -> None:
    """Create the topics that are missing; existing ones are left as they are."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    admin = AdminClient(config)
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    wanted = [
        NewTopic(name, num_partitions=partitions, replication_factor=-1, config=topic_config)
        for name, (partitions, topic_config) in topic_specs(topics).items()
        if name not in existing
    ]
    if not wanted:
        return
    for name, future in admin.create_topics(wanted, request_timeout=timeout_s).items():
        try:
            future.result(timeout_s)
            log.info("created topic %s", name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise BrokerError(f"could not create topic {name}: {exc}") from exc
