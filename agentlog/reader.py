"""The one partition reader: a topic's partitions read from given offsets up to their
ends (or followed), offset ranges, the record at an offset, the first record at a time.

Every wait is bounded and says what it waited for. A partition's end is learnt from real
fetches: partition EOF, or the high watermark each fetch response carries. ListOffsets is
never asked (Tansu answers it wrongly after batched produce, and answers 0 to
offsets-for-times: seek by time reads the records' own timestamps). A fetch at an offset
past the end fails on Kafka (out of range) and waits on Tansu; the reader notices both,
so neither hangs. A fetch answered without some offsets (Tansu under load) is noticed
(`out_of_order`) and read again (`read_gap`) rather than passed over. Everything here is
`PartitionReader`; the functions are its common uses.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from agentlog.connection import resolve_bootstrap
from agentlog.errors import BrokerUnavailable, TopicError
from agentlog.kafka_config import range_reader_config, reader_config
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


class Watch(Protocol):
    """What tells a reader that no broker answers (`BrokerWatch`, or a service's
    `agentlog.outage.OutageWatch`): fed the client's errors and the reader's news,
    `check` raises BrokerUnavailable once it is time to give up."""

    def on_error(self, error: KafkaError) -> None: ...
    def answered(self) -> None: ...
    def check(self, consumer: Consumer, topic: str) -> None: ...


_BATCH = 10_000
_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Bounds:
    """The offsets a partition holds: [start, end). `end` is the next offset written."""

    start: int
    end: int


class _OutOfRange(Exception):
    """Kafka refused a fetch offset of `partition`: it lies past the end (or before the
    start). Only readers that asked for it (`reset=False`) see it."""

    def __init__(self, partition: int) -> None:
        super().__init__(partition)
        self.partition = partition


class PartitionReader:
    """One reading consumer (no group, no commits) of one topic's partitions.

    `ends` holds each partition's end as the fetches so far reported it; range reads stop
    there, so a replay sees the log as it was when it read it. `fetch` is the one bounded
    wait every read goes through. With `reset` (for followers), an offset out of range
    starts again at the log start as Kafka's `auto.offset.reset=earliest` does; without
    it (ranges, checks) it is reported, never silently read from elsewhere."""

    def __init__(
        self,
        settings: Settings,
        topic: str,
        *,
        idle_timeout: float = 30.0,
        reset: bool = False,
        watch: Watch | None = None,
        **config: Any,
    ) -> None:
        self.settings = settings
        self.topic = topic
        self.idle_timeout = idle_timeout
        self._watch: Watch = watch or BrokerWatch(settings)
        make = reader_config if reset else range_reader_config
        self.consumer = Consumer(make(settings, error_cb=self._watch.on_error, **config))
        self.records_read = 0
        self.ends: dict[int, int] = {}
        self.assigned: set[int] = set()
        self._idle_since = time.monotonic()

    # -- the one wait ------------------------------------------------------------------

    def assign(self, starts: dict[int, int]) -> None:
        """Read these partitions (too) from these offsets (OFFSET_BEGINNING: the start)."""
        fresh = {p: o for p, o in starts.items() if p not in self.assigned}
        moved = {p: o for p, o in starts.items() if p in self.assigned}
        if moved:
            self.consumer.incremental_unassign([TopicPartition(self.topic, p) for p in moved])
        assignment = [TopicPartition(self.topic, p, o) for p, o in {**fresh, **moved}.items()]
        self.consumer.incremental_assign(assignment)
        # A partition paused by an earlier read stays paused in librdkafka across
        # assignments: reading it again means resuming it.
        self.consumer.resume(assignment)
        self.assigned.update(starts)
        self._idle_since = time.monotonic()

    def unassign(self) -> None:
        self.consumer.unassign()
        self.assigned.clear()

    def fetch(self, waiting_for: str, *, idle_timeout: float | None = -1.0) -> list[Message]:
        """The records and end-of-partition events the next fetch hands, of the assigned
        partitions (records still on their way from an earlier assignment are dropped),
        noting each partition's end from the fetch's high watermark. Raises _OutOfRange
        (without `reset`), BrokerUnavailable for a fatal error, when the watch gives up,
        or when nothing has arrived for `idle_timeout` seconds (default the reader's;
        None: wait for ever, a follower's choice) naming `waiting_for`."""
        # consume() waits its whole timeout for a batch that is not full: take what is
        # there, else wait for the first record only.
        batch = self.consumer.consume(_BATCH, 0)
        if not batch:
            first = self.consumer.poll(_POLL_SECONDS)
            batch = [first] if first is not None else []
        if not batch:
            self._watch.check(self.consumer, self.topic)
        for partition in self.assigned:
            high = self.high_watermark(partition)
            if high is not None and high > self.ends.get(partition, -1):
                self.ends[partition] = high
        handed = []
        for message in batch:
            error = message.error()
            if error is not None and error.code() != KafkaError._PARTITION_EOF:
                if error.code() == KafkaError._AUTO_OFFSET_RESET:
                    refused = message.partition()
                    if refused is None:
                        raise BrokerUnavailable(f"reading {waiting_for} failed: {error.str()}")
                    raise _OutOfRange(refused)
                if error.fatal() or not error.retriable():
                    raise BrokerUnavailable(f"reading {waiting_for} failed: {error.str()}")
                continue  # retried by the client; the idle bound bounds the wait
            if message.partition() in self.assigned:
                handed.append(message)
        now = time.monotonic()
        if handed:
            self._idle_since = now
            self._watch.answered()
            return handed
        bound = self.idle_timeout if idle_timeout == -1.0 else idle_timeout
        if bound is not None and now - self._idle_since > bound:
            raise BrokerUnavailable(
                f"no answer from Kafka at {self.settings.bootstrap_servers} for "
                f"{bound:.0f}s while reading {waiting_for}"
            )
        return handed

    def high_watermark(self, partition: int) -> int | None:
        """The partition's end as the last fetch answered it; None before any answer."""
        return high_watermark(self.consumer, self.topic, partition)

    # -- what the topic holds ----------------------------------------------------------

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
        self.unassign()
        self.assign({partition: OFFSET_BEGINNING})
        try:
            waiting_for = f"the end of {self.topic}[{partition}]"
            while True:
                for message in self.fetch(waiting_for):
                    _, offset = partition_offset(message)
                    if message.error() is not None:  # partition EOF: nothing (left) to read
                        self.ends[partition] = offset
                        return Bounds(offset, offset)
                    if partition in self.ends:
                        return Bounds(offset, self.ends[partition])
        finally:
            self.unassign()

    def end(self, partition: int) -> int:
        """The partition's end as last fetched (one fetch if none was)."""
        if partition not in self.ends:
            self.bounds(partition)
        return self.ends[partition]

    # -- seek by offset ----------------------------------------------------------------

    def read(self, partition: int, start: int, stop: int | None = None) -> Iterator[Message]:
        """The records at offsets [start, stop), `stop` None: to the partition's end (as
        the first fetch reports it). A `start` past the end reads nothing."""
        limit = _lower(stop, self.ends.get(partition))
        if limit is not None and start >= limit:
            return
        self.unassign()
        self.assign({partition: start})
        waiting_for = f"{self.topic}[{partition}] offsets {start}..{'' if stop is None else stop}"
        try:
            while True:
                batch = self.fetch(waiting_for)
                for message in batch:
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
                # Tansu keeps a fetch past the end waiting; its watermark tells.
                high = self.ends.get(partition)
                if not batch and high is not None and high <= start:
                    return
        except _OutOfRange:
            self.unassign()
            self.bounds(partition)  # where the log really is; nothing to read at `start`
        finally:
            self.unassign()

    def read_ranges(
        self, partition: int, ranges: Iterable[tuple[int, int | None]]
    ) -> Iterator[Message]:
        """Seek by index: the records of each offset range [start, stop) in turn (as an
        index of where a conversation's records are gives them)."""
        for start, stop in ranges:
            yield from self.read(partition, start, stop)

    def records_at(self, offsets: dict[int, int], timeout: float = 10.0) -> dict[int, Found]:
        """For each partition, the record at the given offset: the first record delivered
        from there, or the partition's end if it ends at or before it. An offset out of
        range (below the log start, or past the end) is answered from the log start (Kafka
        refuses the fetch; Tansu keeps a fetch past the end waiting, but reports the end in
        its answer)."""
        found: dict[int, Found] = {}
        if not offsets:
            return found
        self.unassign()
        self.assign(offsets)
        deadline = time.monotonic() + timeout
        try:
            while len(found) < len(offsets):
                missing = {p: o for p, o in offsets.items() if p not in found}
                waiting_for = f"the records of {self.topic} at {missing} (partition: offset)"
                if time.monotonic() > deadline:
                    raise BrokerUnavailable(
                        f"Kafka at {self.settings.bootstrap_servers} did not deliver "
                        f"{waiting_for} within {timeout:.0f}s"
                    )
                try:
                    batch = self.fetch(waiting_for, idle_timeout=timeout)
                except _OutOfRange as out:
                    self.assign({out.partition: OFFSET_BEGINNING})
                    continue
                for message in batch:
                    partition, offset = partition_offset(message)
                    if partition in found:
                        continue
                    if message.error() is None:
                        found[partition] = Found(message, None)
                        self.consumer.pause([TopicPartition(self.topic, partition)])
                    else:
                        found[partition] = Found(None, offset)
                for partition, offset in missing.items():
                    high = self.ends.get(partition)
                    if partition not in found and high is not None and high <= offset:
                        found[partition] = Found(None, high)
            return found
        finally:
            self.unassign()

    def partition_ends(
        self, partitions: Iterable[int], starts: dict[int, int], timeout: float = 30.0
    ) -> dict[int, int]:
        """The end of each partition, from a real fetch at `starts` (default: the
        beginning). A start past the end is answered with the end."""
        wanted = list(partitions)
        ends: dict[int, int] = {}
        self.unassign()
        self.assign({p: starts.get(p, OFFSET_BEGINNING) for p in wanted})
        deadline = time.monotonic() + timeout
        try:
            while len(ends) < len(wanted):
                pending = sorted(set(wanted) - set(ends))
                if time.monotonic() > deadline:
                    raise BrokerUnavailable(
                        f"Kafka at {self.settings.bootstrap_servers} did not report the ends "
                        f"of {self.topic} partitions {pending} within {timeout:.0f}s"
                    )
                waiting_for = f"the ends of {self.topic} partitions {pending}"
                try:
                    batch = self.fetch(waiting_for, idle_timeout=timeout)
                except _OutOfRange as out:  # a start past the end: its watermark tells
                    self.assign({out.partition: OFFSET_BEGINNING})
                    continue
                for message in batch:
                    partition, offset = partition_offset(message)
                    if message.error() is not None:
                        ends[partition] = offset
                    elif partition not in ends and partition in self.ends:
                        ends[partition] = self.ends[partition]
                        self.consumer.pause([TopicPartition(self.topic, partition)])
                for partition, start in starts.items():
                    high = self.ends.get(partition)
                    if partition in wanted and partition not in ends and high is not None:
                        if high < start:
                            ends[partition] = high
            return ends
        finally:
            self.unassign()

    # -- seek by time ------------------------------------------------------------------

    def first_at_or_after(self, partitions: Iterable[int], since_ms: int) -> dict[int, int]:
        """Per partition, the offset of the first record (in offset order) whose timestamp
        is at or after `since_ms`, or the partition's end when none is: offsets-for-times
        is not to be trusted on every broker, so the records' own timestamps are read."""
        wanted = list(partitions)
        found = self.partition_ends(wanted, {})
        pending = {p for p in wanted if found[p] > 0}
        if not pending:
            return found
        self.assign(dict.fromkeys(pending, OFFSET_BEGINNING))
        try:
            while pending:
                waiting_for = f"{self.topic} partitions {sorted(pending)} from {since_ms} ms"
                for message in self.fetch(waiting_for):
                    partition, offset = partition_offset(message)
                    if partition not in pending:
                        continue
                    if message.error() is not None:  # read to its end: none is
                        pending.discard(partition)
                    elif message.timestamp()[1] >= since_ms:
                        found[partition] = offset
                        pending.discard(partition)
                        self.consumer.pause([TopicPartition(self.topic, partition)])
            return found
        finally:
            self.unassign()

    def close(self) -> None:
        self.consumer.close()

    def __enter__(self) -> PartitionReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


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
    # A follower lets the broker hold a fetch for new records (reader_config's wait).
    with PartitionReader(settings, topic, idle_timeout=idle_timeout, reset=True) as reader:
        reader.assign({p: starts.get(p, OFFSET_BEGINNING) for p in wanted})
        pending = set(wanted)
        while pending or follow:
            waiting_for = f"{topic} (partitions {sorted(pending)} not read to the end)"
            bound = idle_timeout if pending and not follow else None
            for message in reader.fetch(waiting_for, idle_timeout=bound):
                if message.error() is None:
                    yield message
                else:
                    pending.discard(partition_offset(message)[0])


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
    with PartitionReader(settings, topic, idle_timeout=timeout, reset=True) as reader:
        return reader.partition_ends(range(count), start_offsets or {}, timeout)


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
class OutOfOrder:
    """A record handed at another offset than the one its reader expected next in its
    partition (`out_of_order`): past it (a gap, `missing` holding what the log still has
    of it, read again) or below it (handed again, or the log starts again)."""

    partition: int
    expected: int
    offset: int
    missing: list[Message]  # the gap's records, in offset order ([] below)

    @property
    def below(self) -> bool:
        return self.offset < self.expected

    @property
    def gap(self) -> range:
        """The offsets the fetch did not hand before the record (empty below)."""
        return range(self.expected, self.offset)

    @property
    def lost(self) -> bool:
        """The log holds none of the gap any more (deleted by retention, or transaction
        markers): what a reader that keeps every record notes."""
        return bool(self.gap) and not self.missing


def out_of_order(
    settings: Settings, topic: str, partition: int, offset: int, expected: int | None
) -> OutOfOrder | None:
    """The one detection of offsets a fetch did not hand, for every reader that takes each
    offset in turn (the projector, the committing group member, the archiver, the tool
    client's result reader): None when the record at `offset` is the one `expected` next
    (or nothing is expected yet); otherwise how it differs, with a gap's records already
    read again (`read_gap`).
    What to do with it (take the gap's records first, skip a record handed again, refuse
    a log that starts again, note what was lost) is the caller's."""
    if expected is None or offset == expected:  # every record: the cheap test first
        return None
    if offset < expected:
        return OutOfOrder(partition, expected, offset, [])
    return OutOfOrder(
        partition, expected, offset, read_gap(settings, topic, partition, expected, offset)
    )


@dataclass(frozen=True)
class Found:
    """What a partition holds at an offset asked for."""

    record: Message | None  # the first record at or after it (or the log start, when the
    # offset is out of range on Kafka)
    end: int | None  # the partition's end, when it is at or before the offset


def records_at(
    settings: Settings, topic: str, offsets: dict[int, int], timeout: float = 10.0
) -> dict[int, Found]:
    """For each partition, the record at the given offset (`PartitionReader.records_at`)."""
    if not offsets:
        return {}
    # Kafka itself answers an offset out of range from the log start (as before the one
    # reader): re-assigning after an out-of-range report lost that answer on Kafka.
    with PartitionReader(settings, topic, idle_timeout=timeout, reset=True) as reader:
        return reader.records_at(offsets, timeout)


def high_watermark(consumer: Consumer, topic: str, partition: int) -> int | None:
    """The partition's end as the last fetch of `consumer` answered it; None before any
    answer (ListOffsets is never asked: Tansu answers it wrongly)."""
    _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
    return high if high >= 0 else None


def _lower(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    return a if b is None else min(a, b)
