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
from agentlog.consumers.sinks.sql import OWNERS_TABLE, Dialect, quoted
from agentlog.partitioner import partition_for
from agentlog.reader import PartitionReader


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


class _IndexUnavailable(Exception):
    """The sink cannot answer for the index (the reason is the message): scan instead."""


@dataclass(frozen=True)
class Location:
    """Where to read a conversation: `ranges` of one partition, [start, stop), in order
    (stop None: to the partition's end, as the read finds it)."""

    topic: str
    partition: int
    ranges: tuple[tuple[int, int | None], ...]
    method: str  # "index", "scan", or "archive" (read from the archive, not Kafka)
    entry: IndexEntry | None = None
    applied: int | None = None  # the index holds everything of the partition before it
    sink: str | None = None
    note: str | None = None  # why a scan

    def index_note(self, end: int) -> str | None:
        """What the read had to add to the index (given the partition's end), or None."""
        if self.method != "index" or self.applied is None or end <= self.applied:
            return None
        where = f"{self.topic}[{self.partition}]"
        if self.entry is None:
            return (
                f"not in the conversation_index of {self.sink}; read the {end - self.applied} "
                f"records of {where} it has not applied yet"
            )
        return (
            f"the conversation_index of {self.sink} is {end - self.applied} records behind on "
            f"{where}; read them too"
        )

    def index_mismatch(self, end: int, found: list[tuple[int, str | None]]) -> str | None:
        """Why the index cannot describe this log, or None, given the partition's end and
        the (offset, event id or None) of each record found. The index's range must end
        before the partition does, its first and last offsets hold the conversation's
        records, and the range as many distinct events as the index counted."""
        if self.method != "index":
            return None
        where = f"{self.topic}[{self.partition}]"
        entry = self.entry
        if (self.applied or 0) > end or (entry is not None and entry.last_offset >= end):
            return (
                f"the conversation_index of {self.sink} reaches beyond the end of {where} "
                f"({end}): it was built from another log"
            )
        if entry is None:
            return None
        in_range = [(o, i) for o, i in found if entry.first_offset <= o <= entry.last_offset]
        offsets = {o for o, _ in in_range}
        distinct_events = len({i for _, i in in_range if i is not None})
        if (
            entry.first_offset in offsets
            and entry.last_offset in offsets
            and distinct_events == entry.event_count
        ):
            return None
        return (
            f"the conversation_index of {self.sink} puts {entry.event_count} events at {where} "
            f"offsets {entry.first_offset}..{entry.last_offset}, where the log holds "
            f"{distinct_events} (an index built from another log?)"
        )


def lookup_index(sink_url: str, conversation_id: str, topic: str) -> IndexLookup:
    """The conversation's index row in the sink; _IndexUnavailable if the sink has no
    index of `topic` (no file, no table, another topic) or cannot be read."""
    try:
        sink = open_sink(sink_url, read_only=True)
    except Exception as exc:  # any sink that cannot be opened: a scan finds the same events
        raise _IndexUnavailable(_first_line(exc)) from None
    with sink:
        try:
            return _lookup(sink, conversation_id, topic)
        except _IndexUnavailable:
            raise
        except Exception as exc:  # a query the sink cannot answer: the same
            raise _IndexUnavailable(f"{sink.description}: {_first_line(exc)}") from None


def _lookup(sink: Sink, conversation_id: str, topic: str) -> IndexLookup:
    d = getattr(sink, "dialect", None)
    if not isinstance(d, Dialect):  # the memory sink: its index is not readable by SQL
        raise _IndexUnavailable(f"{sink.description} answers no SQL")
    owners = sink.query(
        f"SELECT group_id FROM {OWNERS_TABLE} WHERE table_name = {d.param('text')}", [INDEX_TABLE]
    )
    if not owners:
        raise _IndexUnavailable(f"{sink.description} has no conversation_index projection")
    group = owners[0][0]
    applied = sink.stored_offsets(group, topic)
    if not applied:
        raise _IndexUnavailable(
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
            raise _IndexUnavailable(
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
    except _IndexUnavailable as exc:
        return scan_location(reader, hashed, str(exc))
    entry = found.entry
    partition = entry.partition if entry is not None else hashed
    applied = found.applied.get(partition, 0)
    # No fetch to find the partition's end first: the read at the range learns it.
    ranges: list[tuple[int, int | None]] = []
    if entry is not None:
        ranges.append((entry.first_offset, entry.last_offset + 1))
    tail = applied if entry is None else max(applied, entry.last_offset + 1)
    ranges.append((tail, None))  # what the projector has not applied yet, if anything
    return Location(topic, partition, tuple(ranges), "index", entry, applied, found.sink)


def scan_location(reader: PartitionReader, partition: int, why: str | None) -> Location:
    """The whole partition; `why` (None when asked for) becomes the note."""
    bounds = reader.bounds(partition)
    note = None
    if why is not None:
        note = (
            f"{why}; scanning all {bounds.end - bounds.start} records of "
            f"{reader.topic}[{partition}] instead"
        )
        if "agentlog project run" not in why:
            note += " (`agentlog project run` builds the index)"
    return Location(reader.topic, partition, ((bounds.start, bounds.end),), "scan", note=note)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
