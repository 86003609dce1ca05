"""Where a conversation's records are: its partition, and the offset ranges to read.

The partition is the producer's murmur2 of the conversation id (DESIGN.md: every
producer partitions with `murmur2_random`). A sink holding the `conversation_index`
projection narrows it to the range [first, last] of the conversation's offsets, plus
whatever the projector has not applied yet (from the offset it stored to the end);
without one, replay scans the whole partition, and says why.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentlog.consumers.projections.conversation_index import TABLE as INDEX_TABLE
from agentlog.consumers.sinks import Sink, open_sink
from agentlog.consumers.sinks.sql import OWNERS_TABLE, quoted
from agentlog.replay.log_range import Bounds, PartitionReader

from agentlog.partitioner import partition_for


@dataclass(frozen=True)
class IndexEntry:
    """The index's row for a conversation: its events lie in [first_offset, last_offset]."""

    partition: int
    first_offset: int
    last_offset: int
    event_count: int


@dataclass(frozen=True)
class IndexLookup:
    """What a sink's index knows: the conversation's row (None: not among the offsets
    applied), and up to which offset (exclusive) of each partition it has applied."""

    sink: str
    entry: IndexEntry | None
    applied: dict[int, int]


class IndexUnavailable(Exception):
    """The sink cannot answer for the index (the reason is the message): scan instead."""


@dataclass(frozen=True)
class Location:
    topic: str
    partition: int
    bounds: Bounds
    ranges: tuple[tuple[int, int], ...]  # [start, stop) ranges to read, in order
    method: str  # "index" or "scan"
    entry: IndexEntry | None = None
    note: str | None = None  # why a scan, or what the index did not cover

    @property
    def size(self) -> int:
        return sum(stop - start for start, stop in self.ranges)


def lookup_index(sink_url: str, conversation_id: str, topic: str) -> IndexLookup:
    """The conversation's index row in the sink; IndexUnavailable if the sink has no
    index of `topic` (no file, no table, another topic) or cannot be read."""
    try:
        sink = open_sink(sink_url, read_only=True)
    except Exception as exc:  # any sink that cannot be opened: a scan finds the same events
        raise IndexUnavailable(_first_line(exc)) from None
    with sink:
        try:
            return _lookup(sink, conversation_id, topic)
        except IndexUnavailable:
            raise
        except Exception as exc:  # a query the sink cannot answer: the same
            raise IndexUnavailable(f"{sink.description}: {_first_line(exc)}") from None


def _lookup(sink: Sink, conversation_id: str, topic: str) -> IndexLookup:
    d = sink.dialect
    owners = sink.query(
        f"SELECT group_id FROM {OWNERS_TABLE} WHERE table_name = {d.param('text')}", [INDEX_TABLE]
    )
    if not owners:
        raise IndexUnavailable(f"{sink.description} has no conversation_index projection")
    group = owners[0][0]
    applied = sink.stored_offsets(group, topic)
    if not applied:
        raise IndexUnavailable(
            f"the conversation_index of {sink.description} holds nothing of {topic}"
        )
    rows = sink.query(
        f'SELECT t.topic, t."partition", t.first_offset, t.last_offset, t.event_count '
        f"FROM {quoted(INDEX_TABLE)} AS t WHERE t.conversation_id = {d.param('text')}",
        [conversation_id],
    )
    entry = None
    if rows:
        row_topic, partition, first, last, count = rows[0]
        if row_topic != topic:
            raise IndexUnavailable(
                f"the conversation_index of {sink.description} is of {row_topic}, not {topic}"
            )
        entry = IndexEntry(int(partition), int(first), int(last), int(count))
    return IndexLookup(sink.description, entry, applied)


def locate(
    reader: PartitionReader, conversation_id: str, *, sink_url: str | None, scan: bool = False
) -> Location:
    """Where to read the conversation: through the sink's index, else a partition scan."""
    topic = reader.topic
    # Asked first, also where the index names the partition: it says a missing topic
    # plainly, and a fetch assigned before the client knows the partition's leader
    # waits out librdkafka's fetch backoff (half a second).
    hashed = partition_for(conversation_id, reader.partition_count())
    if scan or sink_url is None:
        return scan_location(reader, hashed, None if scan else "no sink given")
    try:
        found = lookup_index(sink_url, conversation_id, topic)
    except IndexUnavailable as exc:
        return scan_location(reader, hashed, str(exc))
    entry = found.entry
    partition = entry.partition if entry is not None else hashed
    bounds = reader.bounds(partition)
    applied = found.applied.get(partition, bounds.start)
    if applied > bounds.end or (entry is not None and entry.last_offset >= bounds.end):
        return scan_location(
            reader,
            partition,
            f"the conversation_index of {found.sink} reaches beyond the end of "
            f"{topic}[{partition}] ({bounds.end}): it was built from another log",
            bounds,
        )
    unapplied = (max(applied, bounds.start), bounds.end)
    if entry is None:
        note = None
        if unapplied[0] < unapplied[1]:
            note = (
                f"not in the conversation_index of {found.sink}; read the "
                f"{unapplied[1] - unapplied[0]} records of {topic}[{partition}] it has not "
                "applied yet"
            )
        return Location(topic, partition, bounds, (unapplied,), "index", None, note)
    ranges = [(entry.first_offset, entry.last_offset + 1)]
    note = None
    if unapplied[0] < unapplied[1]:
        start = max(unapplied[0], entry.last_offset + 1)
        ranges.append((start, bounds.end))
        note = (
            f"the conversation_index of {found.sink} is {bounds.end - applied} records behind "
            f"on {topic}[{partition}]; read them too"
        )
    return Location(topic, partition, bounds, tuple(ranges), "index", entry, note)


def scan_location(
    reader: PartitionReader, partition: int, why: str | None, bounds: Bounds | None = None
) -> Location:
    """The whole partition; `why` (None when asked for) becomes the note."""
    bounds = bounds or reader.bounds(partition)
    note = None
    if why is not None:
        note = (
            f"{why}; scanning all {bounds.end - bounds.start} records of "
            f"{reader.topic}[{partition}] instead"
        )
        if "agentlog project run" not in why:
            note += " (`agentlog project run` builds the index)"
    return Location(
        reader.topic, partition, bounds, ((bounds.start, bounds.end),), "scan", None, note
    )


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
