"""Is this the log I applied? The one check, for the projector and the archiver alike.

Offsets only mean something in the log they were read from. A topic deleted and created
again under the same name (a restarted in-memory dev broker, a wiped Kafka) starts over
at offset 0; reading on from stored offsets would mix two logs. So a reader that stored
"up to offset N of partition P, whose last record was event E" looks at the record at N
now, with the one partition reader (`records_at`): the log must still hold E there, or
have deleted it by retention. What differs is told by a `Held`; the caller words it for
its user (the projector names its sink, the archiver its folder).

Works on both engines: Kafka answers a fetch past the end with out-of-range (the reader
then starts at the log start, a record below N), Tansu keeps it waiting but reports the
partition's end in the fetch's high watermark.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from agentlog.errors import DecodeError
from agentlog.reader import partition_offset, records_at
from agentlog.serde import decode
from agentlog.settings import Settings


class Verdict(Enum):
    SAME = "same"  # the log holds the event expected at the offset
    ENDS_BEFORE = "ends before"  # the partition ends at or before the offset (`Held.at`)
    STARTS_AGAIN = "starts again"  # its first record from there lies below the offset
    RETENTION = "retention"  # the offset was deleted by retention: cannot be compared
    OTHER_EVENT = "other event"  # another event (`Held.event_id`; None: not an event)


@dataclass(frozen=True)
class Held:
    """What a partition holds where a reader expected `expected_event` at `offset`."""

    verdict: Verdict
    offset: int
    expected_event: str | None
    at: int  # the partition's end (ENDS_BEFORE) or the offset of the record found
    event_id: str | None = None  # the event found there (OTHER_EVENT, SAME)


def what_the_log_holds(
    settings: Settings,
    topic: str,
    expected: dict[int, tuple[int, str | None]],
    timeout: float = 10.0,
) -> dict[int, Held]:
    """For each partition -> (offset, event id expected there), what the log holds."""
    found = records_at(settings, topic, {p: offset for p, (offset, _) in expected.items()}, timeout)
    held: dict[int, Held] = {}
    for partition, (offset, event) in expected.items():
        here = found[partition]
        if here.record is None:
            assert here.end is not None
            held[partition] = Held(Verdict.ENDS_BEFORE, offset, event, here.end)
            continue
        at = partition_offset(here.record)[1]
        if at < offset:
            held[partition] = Held(Verdict.STARTS_AGAIN, offset, event, at)
        elif at > offset:
            held[partition] = Held(Verdict.RETENTION, offset, event, at)
        else:
            found_id = _event_id(here.record.value(), topic, partition, at)
            verdict = Verdict.SAME if found_id == event else Verdict.OTHER_EVENT
            held[partition] = Held(verdict, offset, event, at, found_id)
    return held


def _event_id(value: bytes | None, topic: str, partition: int, offset: int) -> str | None:
    try:
        return str(decode(value, topic=topic, partition=partition, offset=offset)["event_id"])
    except DecodeError:
        return None
