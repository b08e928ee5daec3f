"""The Kafka clients a bank may publish transactions with, each behind the same two calls.

Every client reads a topic the same way: assigned to all its partitions from the first offset,
never joining a group, until it holds `count` records or `timeout_s` passes.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from typing import Protocol

Record = tuple[bytes, bytes]  # key, value

# librdkafka before 2.2.0 skips one byte too few of each tagged field it does not know
# (confluentinc/librdkafka#4253, fixed by #4278); see docs/transactions.md.
LIBRDKAFKA_TAG_FIX = (2, 2, 0)


class KafkaClient(Protocol):
    """Produce one record and read a topic back, the way a bank's integration would."""

    name: str

    def produce(self, bootstrap: str, topic: str, key: bytes, value: bytes) -> None: ...

    def read(self, bootstrap: str, topic: str, count: int, timeout_s: float) -> list[Record]: ...


@dataclass(frozen=True)
class ConfluentKafka:
    """confluent-kafka (librdkafka): the client of the worker itself."""

    name: str = "confluent-kafka"

    def produce(self, bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
        producer.produce(topic, value, key)
        assert producer.flush(30) == 0, "confluent-kafka did not deliver"

    def read(self, bootstrap: str, topic: str, count: int, timeout_s: float) -> list[Record]:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused"})
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        found: list[Record] = []
        deadline = time.monotonic() + timeout_s
        try:
            while len(found) < count and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is not None and message.error() is None:
                    found.append((message.key(), message.value()))
        finally:
            consumer.close()
        return found


@dataclass(frozen=True)
class KafkaPython:
    """kafka-python: pure Python, no librdkafka."""

    name: str = "kafka-python"

    def produce(self, bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        try:
            producer.send(topic, value=value, key=key).get(timeout=30)
        finally:
            producer.close()

    def read(self, bootstrap: str, topic: str, count: int, timeout_s: float) -> list[Record]:
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        found: list[Record] = []
        deadline = time.monotonic() + timeout_s
        try:
            partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
            consumer.assign(partitions)
            consumer.seek_to_beginning()
            while len(found) < count and time.monotonic() < deadline:
                for batch in consumer.poll(timeout_ms=500).values():
                    found += [(message.key, message.value) for message in batch]
        finally:
            consumer.close()
        return found


@dataclass(frozen=True)
class AioKafka:
    """aiokafka: asyncio, no librdkafka."""

    name: str = "aiokafka"

    def produce(self, bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
        asyncio.run(self._produce(bootstrap, topic, key, value))

    def read(self, bootstrap: str, topic: str, count: int, timeout_s: float) -> list[Record]:
        return asyncio.run(self._read(bootstrap, topic, count, timeout_s))

    async def _produce(self, bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(topic, value, key=key)
        finally:
            await producer.stop()

    async def _read(self, bootstrap: str, topic: str, count: int, timeout_s: float) -> list[Record]:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        found: list[Record] = []
        deadline = time.monotonic() + timeout_s
        try:
            await consumer.topics()  # fetches the metadata partitions_for_topic reads
            wanted = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
            consumer.assign(wanted)
            await consumer.seek_to_beginning(*wanted)
            while len(found) < count and time.monotonic() < deadline:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    found += [(message.key, message.value) for message in batch]
        finally:
            await consumer.stop()
        return found


@dataclass(frozen=True)
class Kcat:
    """The kcat command line (librdkafka), with `options` such as `-X api.version.request=false`."""

    options: tuple[str, ...] = ()
    name: str = "kcat"

    def run(self, bootstrap: str, *args: str, stdin: bytes = b"", timeout_s: float = 30.0) -> str:
        """Run kcat; its stdout, or AssertionError with its stderr when it fails."""
        argv = ["kcat", "-b", bootstrap, *self.options, *args]
        done = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout_s)
        stderr = done.stderr.decode(errors="replace")
        if done.returncode != 0:
            raise AssertionError(f"kcat exited {done.returncode}: {stderr}")
        return done.stdout.decode()

    def produce(self, bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
        self.run(bootstrap, "-P", "-t", topic, "-k", key.decode(), stdin=value + b"\n")

    def read(self, bootstrap: str, topic: str, count: int, timeout_s: float) -> list[Record]:
        # -e: exit at the end of every partition. Offset 0 rather than `beginning`: no
        # ListOffsets request, which kcat's fallback protocol (API versions of 0.9) misreads.
        out = self.run(
            bootstrap, "-C", "-t", topic, "-o", "0", "-e", "-f", "%k\t%s\n", timeout_s=timeout_s
        )
        lines = [line.split("\t", 1) for line in out.splitlines()]
        return [(key.encode(), value.encode()) for key, value in lines]


def kcat_librdkafka() -> tuple[int, ...] | None:
    """The librdkafka version of the kcat on PATH, or None without one."""
    if shutil.which("kcat") is None:
        return None
    banner = subprocess.run(["kcat", "-V"], capture_output=True, text=True, check=False).stdout
    found = re.search(r"librdkafka (\d+)\.(\d+)\.(\d+)", banner)
    assert found, f"no librdkafka version in `kcat -V`: {banner}"
    return tuple(int(part) for part in found.groups())
