"""Is this the log I applied? The one check, for the projector and the archiver alike.

Offsets only mean something in the log they were read from. A topic deleted and created
again under the same name (a restarted in-memory dev broker, a wiped Kafka) starts over
at offset 0; reading on from stored offsets would mix two logs. So a reader that stored
"up to offset N of partition P, whose last record was event E" looks at the record at N
now, with the one partition reader (`records_at`): the log must still hold E there, or
have deleted it by retention. What differs is told by a `Held`, and worded here, once,
with its advice (`worded`), for the one who applied the log (`Applier`: the projector
names its sink, the archiver its folder). A reader that meets the same verdict while
reading (the first record after a seek lies below the offset it sought) words it here
too (`starts_again`).

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

FRESH_SINK = "project into a fresh sink (--sink) from the start of the log"
NEW_ARCHIVE = "archive this log into a new --dir"


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


# The verdicts that mean another log: applying on from the stored offsets would mix two.
REFUSED = frozenset({Verdict.ENDS_BEFORE, Verdict.STARTS_AGAIN, Verdict.OTHER_EVENT})


@dataclass(frozen=True)
class Applier:
    """Who applied records of a log, as its user knows it: what a verdict is worded for."""

    name: str  # a sink's description, "the archive in DIR"
    applied: str  # what it did with the records: "applied", "archived"
    built: str  # what that made of it: "built", "written"
    advice: str  # what to do about another log


def projection(sink: str) -> Applier:
    """A projector's sink (and `project status`, which reads it)."""
    return Applier(sink, "applied", "built", FRESH_SINK)


def archive(root: object) -> Applier:
    """An archive folder (the archiver, `archive status`)."""
    return Applier(f"the archive in {root}", "archived", "written", NEW_ARCHIVE)


def worded(held: Held, topic: str, partition: int, applier: Applier) -> str:
    """The one line a verdict is shown as: for a verdict in REFUSED, what differs and what
    to do; for RETENTION, why nothing could be compared; for SAME, that all is well."""
    if held.verdict is Verdict.SAME:
        return (
            f"{topic}[{partition}] holds event {held.event_id} at offset {held.offset}, as "
            f"{applier.name} {applier.applied} it"
        )
    if held.verdict is Verdict.RETENTION:
        return (
            f"{topic}[{partition}] no longer holds offset {held.offset} (retention): could not "
            f"check it is the log {applier.name} was {applier.built} from"
        )
    up_to = f"offsets up to {held.offset}"
    if held.expected_event is not None:
        up_to += f" (event {held.expected_event})"
    if held.verdict is Verdict.ENDS_BEFORE:
        fact = f"ends at offset {held.at}, but it {applier.applied} {up_to}"
    elif held.verdict is Verdict.STARTS_AGAIN:
        fact = f"starts again at offset {held.at}, but it {applier.applied} {up_to}"
    else:
        fact = (
            f"holds {_record(held.event_id)} at offset {held.offset}, but it "
            f"{applier.applied} {_record(held.expected_event)} there"
        )
    return another_log(applier, topic, f"partition {partition} {fact}")


def another_log(applier: Applier, topic: str, fact: str) -> str:
    """The refusal of a log that is not the one `applier` applied, for what shows it."""
    return (
        f"{applier.name} was {applier.built} from another log of {topic}: {fact}; the topic "
        f"was deleted and created again (a restarted dev broker?): {applier.advice}"
    )


def _record(event_id: str | None) -> str:
    return f"event {event_id}" if event_id else "a record that is not an agentlog event"


def starts_again(topic: str, partition: int, found: int, applied_to: int, applier: Applier) -> str:
    """A reader that sought `applied_to` (every offset below it applied) was handed offset
    `found` below it: the log starts again (on Kafka, a seek past the end of a shorter
    log is answered from its start). The STARTS_AGAIN verdict, met while reading."""
    held = Held(Verdict.STARTS_AGAIN, applied_to - 1, None, found)
    return worded(held, topic, partition, applier)


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
