"""Where a new consumer group starts reading: `--from earliest|latest|TIME`.

A group that has stored no position yet starts at the beginning of the log, at its end
(only what happens from now on) or at the first record of each partition at or after a
time. The end is the high watermark of a real fetch and a time is found by reading the
records' own timestamps (an event's `occurred_at`): Tansu answers ListOffsets and
offsets-for-times wrongly, so neither is asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from confluent_kafka import Message

from agentlog.errors import ConfigurationError
from agentlog.reader import PartitionReader, partition_ends, partition_offset, records_at
from agentlog.render import iso_time
from agentlog.serde import micros_of
from agentlog.settings import Settings


@dataclass(frozen=True)
class StartFrom:
    """A new group's first position: `earliest`, `latest`, or `time` (UTC microseconds)."""

    kind: Literal["earliest", "latest", "time"]
    micros: int | None = None

    def describe(self) -> str:
        if self.kind == "earliest":
            return "at the beginning of the log"
        if self.kind == "latest":
            return "at the end of the log (only events from now on)"
        assert self.micros is not None
        return f"at the first event at or after {iso_time(self.micros)}"

    @property
    def option(self) -> str:
        """How to ask for it again on the command line."""
        return self.kind if self.micros is None else iso_time(self.micros)


EARLIEST = StartFrom("earliest")
LATEST = StartFrom("latest")


def parse_start_from(text: str) -> StartFrom:
    """`earliest`, `latest` or an ISO 8601 time (UTC unless it names its zone)."""
    word = text.strip().lower()
    if word in ("earliest", "beginning"):
        return EARLIEST
    if word in ("latest", "end", "now"):
        return LATEST
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigurationError(
            f"--from {text!r}: expected earliest, latest or an ISO 8601 time (2026-11-02T09:00:00Z)"
        ) from None
    start = StartFrom("time", micros_of(moment if moment.tzinfo else moment.replace(tzinfo=UTC)))
    assert start.micros is not None
    if start.micros > micros_of(datetime.now(UTC)):
        # No event is at or after it yet, so every event recorded before it would be read:
        # the opposite of what the time asks for.
        raise ConfigurationError(
            f"--from {iso_time(start.micros)} is in the future: use --from latest for only "
            "the events from now on"
        )
    return start


def first_offsets(
    settings: Settings, topic: str, partitions: list[int], start: StartFrom
) -> dict[int, int]:
    """The offset of each partition a group starting at `start` reads first: a real
    offset, so that it can be committed (a group that committed it resumes there, whatever
    its default start)."""
    if not partitions:
        return {}
    if start.kind == "earliest":
        # The first record still held (Kafka answers offset 0, if retention deleted it,
        # from the log start), or the end of an empty partition.
        found_at = records_at(settings, topic, dict.fromkeys(partitions, 0))
        return {
            p: (
                offset_of(found_at[p].record)
                if found_at[p].record is not None
                else (found_at[p].end or 0)
            )
            for p in partitions
        }
    if start.kind == "latest":
        ends = partition_ends(settings, topic)
        return {p: ends[p] for p in partitions}
    assert start.micros is not None
    # Event times are not in offset order (a back-dated import): the first record at or
    # after the time, in offset order, is where reading starts.
    with PartitionReader(settings, topic) as reader:
        return reader.first_at_or_after(partitions, start.micros // 1000)


def offset_of(record: Message | None) -> int:
    assert record is not None
    return partition_offset(record)[1]
