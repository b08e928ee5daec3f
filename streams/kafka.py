"""Producing to Kafka with confluent-kafka: each record's fate known before returning.

A broker that cannot be reached, or refuses us as a client, raises (`BrokerUnavailable`,
`BrokerRefused`); a record the broker will never take as it is (too large, say) comes back
refused on its own, so that one bad record never holds up the others.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger.errors import BrokerRefused, BrokerUnavailable


@dataclass(frozen=True)
class ProducerRecord:
    """One message to produce."""

    topic: str
    value: bytes
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class Delivery:
    """What became of one record: delivered (`error` is None), or why not."""

    record: ProducerRecord
    error: str | None = None
    code: str | None = None  # librdkafka's name for the error, e.g. MSG_SIZE_TOO_LARGE

    @property
    def refused(self) -> bool:
        """The broker will never take this record as it is: retrying cannot help."""
        return self.code in _RECORD_REFUSED


_RECORD_REFUSED = frozenset({"MSG_SIZE_TOO_LARGE", "_MSG_SIZE_TOO_LARGE", "INVALID_RECORD"})
_CLIENT_REFUSED = frozenset(
    {
        "TOPIC_AUTHORIZATION_FAILED",
        "CLUSTER_AUTHORIZATION_FAILED",
        "UNKNOWN_TOPIC_OR_PART",
        "_UNKNOWN_TOPIC",
        "SASL_AUTHENTICATION_FAILED",
    }
)


@dataclass
class KafkaPublisher:
    """An idempotent producer (acks=all) that reports each record's fate."""

    config: Mapping[str, Any]
    linger_ms: int = 5
    _producer: Any = field(default=None, init=False)
    # Publishes may come from several threads (the API's ingestion): one makes the producer.
    _making: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def _client(self) -> Any:
        if self._producer is None:
            with self._making:
                if self._producer is None:
                    self._producer = self._make()
        return self._producer

    def _make(self) -> Any:
        from confluent_kafka import Producer

        return Producer(
            {
                **self.config,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": self.linger_ms,
                "compression.type": "lz4",
            }
        )

    def open(self) -> None:
        """Make the producer now rather than at the first publish."""
        self._client()

    def close(self) -> None:
        """Flush and let go of the producer (a later publish opens a new one)."""
        if self._producer is not None:
            self._producer.flush(10)
            self._producer.close()
            self._producer = None

    def deliver(self, records: Iterable[ProducerRecord], timeout_s: float = 30.0) -> list[Delivery]:
        """Produce, wait for every delivery report, and say what became of each record."""
        producer = self._client()
        reports: dict[int, Delivery] = {}
        sent = list(records)
        for n, record in enumerate(sent):
            refusal = self._produce(producer, record, reports, n)
            if refusal is not None:
                reports[n] = refusal
        if producer.flush(timeout_s) > 0:
            raise BrokerUnavailable(f"{len(sent)} records not confirmed within {timeout_s}s")
        deliveries = [reports.get(n, Delivery(r)) for n, r in enumerate(sent)]
        _raise_if_refused_as_a_client(deliveries)
        return deliveries

    def publish(self, records: Iterable[ProducerRecord], timeout_s: float = 30.0) -> int:
        """Produce every record or raise: for callers with nothing to do with a partial send."""
        deliveries = self.deliver(records, timeout_s)
        failed = [d for d in deliveries if d.error is not None]
        if failed:
            message = f"{len(failed)} of {len(deliveries)} records failed: {failed[0].error}"
            raise BrokerUnavailable(message)
        return len(deliveries)

    @staticmethod
    def _produce(
        producer: Any, record: ProducerRecord, reports: dict[int, Delivery], n: int
    ) -> Delivery | None:
        from confluent_kafka import KafkaException

        def report(err: Any, _msg: Any) -> None:
            if err is not None:
                reports[n] = Delivery(record, str(err), err.name())

        while True:
            try:
                producer.produce(
                    record.topic,
                    value=record.value,
                    key=record.key,
                    headers=list(record.headers),
                    on_delivery=report,
                )
                return None
            except BufferError:
                # The local queue is full: let deliveries drain, then go on.
                producer.poll(0.1)
            except KafkaException as exc:
                error = exc.args[0]
                return Delivery(record, str(error), error.name())


def _raise_if_refused_as_a_client(deliveries: list[Delivery]) -> None:
    for delivery in deliveries:
        if delivery.code in _CLIENT_REFUSED:
            raise BrokerRefused(
                f"the broker refused to take records: {delivery.error}",
                "check that the topics exist (`autostamp setup`) and that this client may "
                f"write to {delivery.record.topic}",
            )


@dataclass
class TopicSink:
    """Keyed messages put on one topic, returning once the broker acknowledged every one.

    The API's ingestion produces through it (`ledger.ingestion.TransactionSink`). Give the
    publisher `message.timeout.ms` no longer than `ack_timeout_s`, so that librdkafka itself
    gives up on a message not acknowledged by then rather than send it later.
    """

    publisher: KafkaPublisher
    topic: str
    ack_timeout_s: float

    async def put(self, messages: Sequence[tuple[bytes | None, bytes]]) -> None:
        records = [ProducerRecord(self.topic, value, key) for key, value in messages]
        # The flush blocks: off the event loop. Raises BrokerError unless all were delivered.
        await asyncio.to_thread(self.publisher.publish, records, self.ack_timeout_s + 1.0)

    def close(self) -> None:
        self.publisher.close()
