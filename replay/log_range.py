"""Reading offset ranges [start, stop) of one partition, every wait bounded.

A partition's end is learnt from real fetches: the high watermark each fetch response
carries, or partition EOF. ListOffsets is never asked (Tansu answers it wrongly). A
fetch at an offset past the end fails on Kafka (out of range: reported, not reset) and
waits on Tansu; the reader notices both from the watermark of the fetch, so neither
hangs. Where the log starts comes from a fetch at its beginning (`bounds`).
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
from agentlog.reader import BrokerWatch, partition_offset
from agentlog.settings import Settings

_BATCH = 10_000
_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Bounds:
    """The offsets a partition holds: [start, end). `end` is the next offset written."""

    start: int
    end: int


class _OutOfRange(Exception):
    """Kafka refused the fetch offset: it lies past the end (or before the start)."""


class PartitionReader:
    """One reading consumer (no group, no commits) for ranges of one topic's partitions.

    `ends` holds each partition's end as the fetches so far reported it; reads stop
    there, so a replay sees the log as it was when it read it."""

    def __init__(self, settings: Settings, topic: str, *, idle_timeout: float = 30.0) -> None:
        self.settings = settings
        self.topic = topic
        self.idle_timeout = idle_timeout
        self._watch = BrokerWatch(settings)
        self.consumer = Consumer(range_reader_config(settings, error_cb=self._watch.on_error))
        self.records_read = 0
        self.ends: dict[int, int] = {}

    def partition_count(self) -> int:
        try:
            # A broker nobody answers at is given up on after the reader's bound.
            timeout = min(self.idle_timeout, self.settings.broker_lost_s)
            metadata = self.consumer.list_topics(self.topic, timeout=timeout)
        except KafkaException as exc:
            raise BrokerUnavailable(
                f"Kafka at {self.settings.bootstrap_servers} did not describe {self.topic}: "
                f"{exc.args[0].str() if exc.args else exc}"
            ) from None
        found = metadata.topics.get(self.topic)
        if found is None or found.error is not None or not found.partitions:
            raise TopicError(f"topic {self.topic} does not exist: run `agentlog topics create`")
        return len(found.partitions)

    def bounds(self, partition: int) -> Bounds:
        """Where the partition's log starts and ends, from one fetch at its beginning."""
        tp = TopicPartition(self.topic, partition, OFFSET_BEGINNING)
        self.consumer.assign([tp])
        try:
            waiting_for = f"the end of {self.topic}[{partition}]"
            for message in self._messages(tp, waiting_for, past_end_from=None):
                _, offset = partition_offset(message)
                if message.error() is not None:  # partition EOF: nothing (left) to read
                    self.ends[partition] = offset
                    return Bounds(offset, offset)
                if partition in self.ends:
                    return Bounds(offset, self.ends[partition])
        finally:
            self.consumer.unassign()
        raise AssertionError("unreachable: _messages raises when it gives up")

    def end(self, partition: int) -> int:
        """The partition's end as last fetched (one fetch if none was)."""
        if partition not in self.ends:
            self.bounds(partition)
        return self.ends[partition]

    def read(self, partition: int, start: int, stop: int | None = None) -> Iterator[Message]:
        """The records at offsets [start, stop), `stop` None: to the partition's end (as
        the first fetch reports it). A `start` past the end reads nothing."""
        limit = _lower(stop, self.ends.get(partition))
        if limit is not None and start >= limit:
            return
        tp = TopicPartition(self.topic, partition, start)
        self.consumer.assign([tp])
        waiting_for = f"{self.topic}[{partition}] offsets {start}..{'' if stop is None else stop}"
        try:
            for message in self._messages(tp, waiting_for, past_end_from=start):
                _, offset = partition_offset(message)
                if offset < start:  # fetched for an earlier assignment
                    continue
                if message.error() is not None:  # partition EOF
                    self.ends[partition] = offset
                    return
                limit = _lower(stop, self.ends.get(partition))
                if limit is not None and offset >= limit:
                    return
                self.records_read += 1
                yield message
                if limit is not None and offset == limit - 1:
                    return
        except _OutOfRange:
            self.consumer.unassign()
            self.bounds(partition)  # where the log really is; nothing to read at `start`
        finally:
            self.consumer.unassign()

    def _messages(
        self, tp: TopicPartition, waiting_for: str, *, past_end_from: int | None
    ) -> Iterator[Message]:
        """Records and EOF events of the partition, noting its end from the fetch
        watermark. Ends quietly when the watermark shows `past_end_from` at or past the
        end (Tansu waits there instead of answering); BrokerUnavailable after
        `idle_timeout` seconds without news."""
        partition = tp.partition
        idle_since = time.monotonic()
        while True:
            # consume() waits its whole timeout for a batch that is not full: take what is
            # there, else wait for the first record only.
            batch = self.consumer.consume(_BATCH, 0)
            if not batch:
                first = self.consumer.poll(_POLL_SECONDS)
                batch = [first] if first is not None else []
            if not batch:
                self._watch.check(self.consumer, self.topic)
            _, high = self.consumer.get_watermark_offsets(tp, cached=True)
            if high >= 0:
                self.ends[partition] = max(high, self.ends.get(partition, 0))
            for message in batch:
                error = message.error()
                if error is not None and error.code() == KafkaError._AUTO_OFFSET_RESET:
                    raise _OutOfRange()
                if error is not None and error.code() != KafkaError._PARTITION_EOF:
                    if error.fatal() or not error.retriable():
                        raise BrokerUnavailable(f"reading {waiting_for} failed: {error.str()}")
                elif message.partition() == partition:  # else left from an earlier assignment
                    idle_since = time.monotonic()
                    self._watch.answered()
                    yield message
            if not batch and past_end_from is not None and 0 <= high <= past_end_from:
                return
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


def _lower(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    return a if b is None else min(a, b)
