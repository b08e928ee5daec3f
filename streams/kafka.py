"""Producing to Kafka with confluent-kafka: every record confirmed by the broker, or an error."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ledger.errors import BrokerError


@dataclass(frozen=True)
class Record:
    """One message to produce."""

    topic: str
    value: bytes
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass
class KafkaPublisher:
    """An idempotent producer (acks=all) that reports each record's fate before returning."""

    config: dict[str, Any]
    linger_ms: int = 5
    _producer: Any = field(default=None, init=False)

    def _client(self) -> Any:
        if self._producer is None:
            from confluent_kafka import Producer

            self._producer = Producer(
                {
                    **self.config,
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": self.linger_ms,
                    "compression.type": "lz4",
                }
            )
        return self._producer

    def publish(self, records: Iterable[Record], timeout_s: float = 30.0) -> int:
        """Produce and wait for every delivery report; raise BrokerError if any failed."""
        producer = self._client()
        failures: list[str] = []

        def report(err: Any, _msg: Any) -> None:
            if err is not None:
                failures.append(str(err))

        count = 0
        for record in records:
            self._produce(producer, record, report)
            count += 1
        if producer.flush(timeout_s) > 0:
            raise BrokerError(f"{count} records not confirmed within {timeout_s}s")
        if failures:
            raise BrokerError(f"{len(failures)} of {count} records failed: {failures[0]}")
        return count

    @staticmethod
    def _produce(producer: Any, record: Record, report: Any) -> None:
        while True:
            try:
                producer.produce(
                    record.topic,
                    value=record.value,
                    key=record.key,
                    headers=list(record.headers),
                    on_delivery=report,
                )
                return
            except BufferError:
                # The local queue is full: let deliveries drain, then go on.
                producer.poll(0.1)
