"""Read a topic's partitions from given offsets up to their ends (or follow them).

The end of a partition is found with `enable.partition.eof`, not with ListOffsets,
which Tansu answers wrongly after batched produce; this is correct on Kafka too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Iterable
from dataclasses import dataclass

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from agentlog.connection import resolve_bootstrap
from agentlog.errors import BrokerUnavailable
from agentlog.kafka_config import reader_config
from agentlog.settings import Settings
from agentlog.topics import partition_count

LOG = logging.getLogger("agentlog.reader")


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


class BrokerWatch:
    """librdkafka's reports that no broker answers (all brokers down, connections refused
    or lost), for readers whose fetches would otherwise wait for them silently: it retries
    for ever. A reader gives up once such reports have gone on for `settings.broker_lost_s`
    and a metadata request confirms that nobody answers; a shorter hiccup is ridden out."""

    _LOST = (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE)

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._since: float | None = None  # when the current run of reports began
        self._last: str = ""

    def on_error(self, error: KafkaError) -> None:
        """The consumer's `error_cb`."""
        if error.code() in self._LOST:
            self._last = error.str()
            if self._since is None:
                self._since = time.monotonic()

    def answered(self) -> None:
        """A record or a partition end arrived: the broker is there."""
        self._since = None

    def check(self, consumer: Consumer, topic: str) -> None:
        """Raise BrokerUnavailable if no broker has answered for the bound."""
        if self._since is None or time.monotonic() - self._since < self._settings.broker_lost_s:
            return
        try:
            consumer.list_topics(topic, timeout=2.0)
        except KafkaException:
            raise BrokerUnavailable(
                f"lost Kafka at {resolve_bootstrap(self._settings)}: no broker answered for "
                f"{self._settings.broker_lost_s:.0f}s while reading {topic} ({self._last})"
            ) from None
        self._since = None  # it answers again


def read_partitions(
    settings: Settings,
    topic: str,
    *,
    partitions: Iterable[int] | None = None,
    start_offsets: dict[int, int] | None = None,
    follow: bool = False,
    idle_timeout: float = 30.0,
) -> Generator[Message, None, None]:
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
    watch = BrokerWatch(settings)
    consumer = reading_consumer(settings, error_cb=watch.on_error)
    try:
        consumer.assign([TopicPartition(topic, p, starts.get(p, OFFSET_BEGINNING)) for p in wanted])
        pending = set(wanted)
        idle = 0.0
        while pending or follow:
            batch = consumer.consume(1000, 0.5)
            if not batch:
                watch.check(consumer, topic)
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
                    watch.answered()
                    yield message
                elif error.code() == KafkaError._PARTITION_EOF:
                    watch.answered()
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
    trusted on every broker. A start past the end is answered with the end (Tansu keeps
    such a fetch waiting, but its answer carries the high watermark)."""
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
                    f"Kafka at {settings.bootstrap_servers} did not report the ends of "
                    f"{topic} partitions {sorted(set(range(count)) - set(ends))} within "
                    f"{timeout:.0f}s"
                )
            for message in consumer.consume(1000, 0.5):
                error = message.error()
                if error is not None and error.code() != KafkaError._PARTITION_EOF:
                    continue  # retried by the client; the deadline bounds the wait
                partition, offset = partition_offset(message)
                if error is not None:
                    ends[partition] = offset
                elif partition not in ends:
                    high = _high_watermark(consumer, topic, partition)
                    if high is not None:
                        ends[partition] = high
                        consumer.pause([TopicPartition(topic, partition)])
            for partition, start in starts.items():
                if partition < count and partition not in ends:
                    high = _high_watermark(consumer, topic, partition)
                    if high is not None and high < start:
                        ends[partition] = high
        return ends
    finally:
        consumer.close()


def read_range(
    settings: Settings, topic: str, partition: int, start: int, stop: int
) -> list[Message]:
    """The records of one partition from offset `start` up to (not including) `stop`."""
    found = []
    records = read_partitions(
        settings, topic, partitions=[partition], start_offsets={partition: start}
    )
    try:
        for message in records:
            if partition_offset(message)[1] >= stop:
                break
            found.append(message)
    finally:
        records.close()
    return found


# A gap in the offsets a consumer is handed is read again up to this many times, until
# two reads agree (a gap the log really has) or the gap is filled, pausing in between.
_GAP_READS = 4
_GAP_READ_PAUSE_S = 0.1


def read_gap(
    settings: Settings, topic: str, partition: int, start: int, stop: int
) -> list[Message]:
    """The records a consumer was not handed: it expected offset `start` next and was
    handed `stop`. agentlog's topics have no transactions and no compaction, so Kafka
    hands every offset; a fetch answered without some (seen on Tansu 0.6 under load: a
    batch one client produced is not yet readable while a later batch of another client
    already is) must not make a reader pass over them. Read again until the gap is filled
    or two reads agree that the log has no more there."""
    previous: list[int] | None = None
    found: list[Message] = []
    for attempt in range(_GAP_READS):
        found = read_range(settings, topic, partition, start, stop)
        offsets = [partition_offset(m)[1] for m in found]
        if offsets == list(range(start, stop)) or offsets == previous:
            break
        previous = offsets
        time.sleep(_GAP_READ_PAUSE_S * (attempt + 1))
    level = logging.WARNING if found else logging.INFO
    LOG.log(
        level,
        "%s[%d]: Kafka handed offset %d after %d; read again, offsets %d..%d hold %d record(s)",
        topic,
        partition,
        stop,
        start - 1,
        start,
        stop - 1,
        len(found),
    )
    return found


@dataclass(frozen=True)
class Found:
    """What a partition holds at an offset asked for."""

    record: Message | None  # the first record at or after it (or the log start, when the
    # offset is out of range on Kafka)
    end: int | None  # the partition's end, when it is at or before the offset


def records_at(
    settings: Settings, topic: str, offsets: dict[int, int], timeout: float = 10.0
) -> dict[int, Found]:
    """For each partition, the record at the given offset: the first record delivered
    from there, or the partition's end if it ends at or before it. Kafka answers an
    offset out of range (below the log start, or past the end) from the log start;
    Tansu keeps a fetch past the end waiting, but reports the end in its answer."""
    found: dict[int, Found] = {}
    if not offsets:
        return found
    consumer = reading_consumer(settings)
    try:
        consumer.assign([TopicPartition(topic, p, o) for p, o in offsets.items()])
        deadline = time.monotonic() + timeout
        while len(found) < len(offsets):
            if time.monotonic() > deadline:
                missing = {p: o for p, o in offsets.items() if p not in found}
                raise BrokerUnavailable(
                    f"Kafka at {settings.bootstrap_servers} did not deliver the records of "
                    f"{topic} at {missing} (partition: offset) within {timeout:.0f}s"
                )
            for message in consumer.consume(100, 0.2):
                error = message.error()
                if error is not None and error.code() != KafkaError._PARTITION_EOF:
                    if error.fatal() or not error.retriable():
                        raise BrokerUnavailable(f"reading {topic} failed: {error.str()}")
                    continue
                partition, offset = partition_offset(message)
                if partition in found:
                    continue
                if error is None:
                    found[partition] = Found(message, None)
                    consumer.pause([TopicPartition(topic, partition)])
                else:
                    found[partition] = Found(None, offset)
            for partition, offset in offsets.items():
                if partition not in found:
                    high = _high_watermark(consumer, topic, partition)
                    if high is not None and high <= offset:
                        found[partition] = Found(None, high)
        return found
    finally:
        consumer.close()


def _high_watermark(consumer: Consumer, topic: str, partition: int) -> int | None:
    """The partition's end as the last fetch answered it; None before any answer."""
    _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
    return high if high >= 0 else None
