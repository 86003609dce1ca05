"""Read a topic's partitions from given offsets up to their ends (or follow them).

The end of a partition is found with `enable.partition.eof`, not with ListOffsets,
which Tansu answers wrongly after batched produce; this is correct on Kafka too.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from agentlog.errors import BrokerUnavailable
from agentlog.kafka_config import reader_config
from agentlog.settings import Settings
from agentlog.topics import partition_count


def reading_consumer(settings: Settings, **extra: object) -> Consumer:
    """A consumer that only reads: no group membership, no commits."""
    return Consumer(reader_config(settings, **extra))


def partition_offset(message: Message) -> tuple[int, int]:
    """The partition and offset of a record or an end-of-partition event (confluent-kafka
    types both as optional: a client-level error event has neither)."""
    partition, offset = message.partition(), message.offset()
    if partition is None or offset is None:
        raise BrokerUnavailable(f"Kafka client error: {message.error()}")
    return partition, offset


def read_partitions(
    settings: Settings,
    topic: str,
    *,
    partitions: Iterable[int] | None = None,
    start_offsets: dict[int, int] | None = None,
    follow: bool = False,
    idle_timeout: float = 30.0,
) -> Iterator[Message]:
    """Yield every record of the partitions (all by default), from `start_offsets`
    (default: the beginning), in offset order per partition; stop when every
    partition has reached its end, unless `follow`.

    Raises BrokerUnavailable if nothing arrives for `idle_timeout` seconds before the
    ends are reached (a broker that went away, not an empty topic: empty partitions
    report their end at once)."""
    wanted = (
        list(partitions)
        if partitions is not None
        else list(range(partition_count(settings, topic)))
    )
    starts = start_offsets or {}
    consumer = reading_consumer(settings)
    try:
        consumer.assign([TopicPartition(topic, p, starts.get(p, OFFSET_BEGINNING)) for p in wanted])
        pending = set(wanted)
        idle = 0.0
        while pending or follow:
            batch = consumer.consume(1000, 0.5)
            if not batch:
                idle += 0.5
                if pending and not follow and idle >= idle_timeout:
                    raise BrokerUnavailable(
                        f"no answer from Kafka at {settings.bootstrap_servers} for "
                        f"{idle_timeout:.0f}s while "
                        f"reading {topic} (partitions {sorted(pending)} not read to the end)"
                    )
                continue
            idle = 0.0
            for message in batch:
                error = message.error()
                if error is None:
                    yield message
                elif error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(partition_offset(message)[0])
                elif error.fatal() or not error.retriable():
                    raise BrokerUnavailable(f"reading {topic} failed: {error.str()}")
    finally:
        consumer.close()


def partition_ends(
    settings: Settings,
    topic: str,
    start_offsets: dict[int, int] | None = None,
    timeout: float = 30.0,
) -> dict[int, int]:
    """The end (next offset to be written) of every partition, from the high watermark
    of a real fetch at `start_offsets` (default: the beginning): ListOffsets is not to be
    trusted on every broker."""
    count = partition_count(settings, topic)
    starts = start_offsets or {}
    consumer = reading_consumer(settings)
    ends: dict[int, int] = {}
    try:
        consumer.assign(
            [TopicPartition(topic, p, starts.get(p, OFFSET_BEGINNING)) for p in range(count)]
        )
        deadline = time.monotonic() + timeout
        while len(ends) < count:
            if time.monotonic() > deadline:
                raise BrokerUnavailable(
                    f"Kafka at {settings.bootstrap_servers} did not report the ends of {topic}"
                )
            for message in consumer.consume(1000, 0.5):
                error = message.error()
                if error is not None and error.code() == KafkaError._PARTITION_EOF:
                    partition, end = partition_offset(message)
                    ends[partition] = end
                elif error is None and (partition := partition_offset(message)[0]) not in ends:
                    _, high = consumer.get_watermark_offsets(
                        TopicPartition(topic, partition), cached=True
                    )
                    if high >= 0:
                        ends[partition] = high
                        consumer.pause([TopicPartition(topic, partition)])
        return ends
    finally:
        consumer.close()
