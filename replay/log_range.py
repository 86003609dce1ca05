"""Reading offset ranges [start, stop) of one partition, every wait bounded.

The partition's bounds come from a real fetch at its beginning: the first record (or
partition EOF) gives where the log starts, the fetch's high watermark where it ends.
ListOffsets is never asked (Tansu answers it wrongly), and no fetch is ever sent past
the end (Tansu waits instead of answering out-of-range), on either engine.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from agentlog.errors import BrokerUnavailable, TopicError
from agentlog.kafka_config import range_reader_config
from agentlog.settings import Settings

_BATCH = 10_000
_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Bounds:
    """The offsets a partition holds: [start, end). `end` is the next offset written."""

    start: int
    end: int


class PartitionReader:
    """One reading consumer (no group, no commits) for ranges of one topic's partitions."""

    def __init__(self, settings: Settings, topic: str, *, idle_timeout: float = 30.0) -> None:
        self.settings = settings
        self.topic = topic
        self.idle_timeout = idle_timeout
        self.consumer = Consumer(range_reader_config(settings))
        self.records_read = 0

    def partition_count(self) -> int:
        try:
            metadata = self.consumer.list_topics(self.topic, timeout=self.idle_timeout)
        except KafkaException as exc:
            raise BrokerUnavailable(
                f"Kafka at {self.settings.bootstrap_servers} did not describe {self.topic}: "
                f"{exc.args[0].str() if exc.args else exc}"
            ) from None
        found = metadata.topics.get(self.topic)
        if found is None or found.error is not None or not found.partitions:
            raise TopicError(f"topic {self.topic} does not exist; run `agentlog topics create`")
        return len(found.partitions)

    def bounds(self, partition: int) -> Bounds:
        """Where the partition's log starts and ends, from one fetch at its beginning."""
        tp = TopicPartition(self.topic, partition, OFFSET_BEGINNING)
        self.consumer.assign([tp])
        try:
            for message in self._messages(partition, f"the end of {self.topic}[{partition}]"):
                error = message.error()
                if error is not None:  # partition EOF: nothing (left) to read
                    return Bounds(message.offset(), message.offset())
                _, high = self.consumer.get_watermark_offsets(tp, cached=True)
                if high >= 0:
                    return Bounds(message.offset(), high)
        finally:
            self.consumer.unassign()
        raise AssertionError("unreachable: _messages raises when it gives up")

    def read(self, partition: int, start: int, stop: int) -> Iterator[Message]:
        """The records at offsets [start, stop), `stop` at most the partition's end (so the
        read ends with the record before it, or with partition EOF)."""
        if start >= stop:
            return
        self.consumer.assign([TopicPartition(self.topic, partition, start)])
        try:
            waiting_for = f"{self.topic}[{partition}] offsets {start}..{stop}"
            for message in self._messages(partition, waiting_for):
                offset = message.offset()
                if offset < start:  # fetched for an earlier assignment
                    continue
                if message.error() is not None:  # EOF before `stop`: compacted or aborted tail
                    return
                if offset >= stop:
                    return
                self.records_read += 1
                yield message
                if offset == stop - 1:
                    return
        finally:
            self.consumer.unassign()

    def _messages(self, partition: int, waiting_for: str) -> Iterator[Message]:
        """Records and EOF events of the partition; BrokerUnavailable after `idle_timeout`
        seconds without either."""
        idle_since = time.monotonic()
        while True:
            # consume() waits its whole timeout for a batch that is not full: take what is
            # there, else wait for the first record only.
            batch = self.consumer.consume(_BATCH, 0)
            if not batch:
                first = self.consumer.poll(_POLL_SECONDS)
                batch = [first] if first is not None else []
            for message in batch:
                error = message.error()
                if error is not None and error.code() != KafkaError._PARTITION_EOF:
                    if error.fatal() or not error.retriable():
                        raise BrokerUnavailable(f"reading {waiting_for} failed: {error.str()}")
                elif message.partition() == partition:  # else left from an earlier assignment
                    idle_since = time.monotonic()
                    yield message
            if time.monotonic() - idle_since > self.idle_timeout:
                raise BrokerUnavailable(
                    f"no answer from Kafka at {self.settings.bootstrap_servers} for "
                    f"{self.idle_timeout:.0f}s while reading {waiting_for}"
                )

    def close(self) -> None:
        self.consumer.close()

    def __enter__(self) -> PartitionReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
