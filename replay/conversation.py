"""Replay one conversation: its records from the log, in order, and its state by the
one fold, at any moment or offset.

Records are those of the conversation's partition whose key is the conversation id,
in offset order, undecodable ones included (shown, never folded). Replaying offsets
[a, b) gives the same events and state every time, on either engine.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Literal

from agentlog.consumers.fold import unique_events
from agentlog.consumers.projection import RecordedEvent, Row
from agentlog.errors import (
    BeforeFirstEvent,
    BrokerUnavailable,
    ConversationNotFound,
    DecodeError,
    OffsetBeyondEnd,
    ReplayError,
    TopicError,
)
from agentlog.reader import PartitionReader, partition_offset
from agentlog.recorded import recorded_event
from agentlog.replay.archived import ConversationArchive
from agentlog.replay.locate import Location, locate, scan_location
from agentlog.replay.state import conversation_state
from agentlog.serde import datetime_of, micros_of
from agentlog.settings import Settings


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A record of the conversation that is not an agentlog event."""

    topic: str
    partition: int
    offset: int
    timestamp_micros: int
    size: int
    problem: str


Entry = RecordedEvent | Undecodable


def time_of(entry: Entry) -> int:
    """When it happened, in UTC microseconds (an undecodable record: its Kafka time)."""
    return entry.occurred_at if isinstance(entry, RecordedEvent) else entry.timestamp_micros


@dataclass(frozen=True)
class At:
    """A moment: UTC microseconds, or microseconds after the conversation's first event."""

    micros: int
    relative: bool = False

    def resolve(self, start_micros: int) -> int:
        return start_micros + self.micros if self.relative else self.micros

    def describe(self, start_micros: int) -> str:
        moment = self.resolve(start_micros)
        return f"{iso(moment)} ({relative(moment - start_micros)})"


_DURATION = re.compile(
    r"^\+(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m(?!s))?"
    r"(?:(?P<s>\d+(?:\.\d+)?)s)?(?:(?P<ms>\d+(?:\.\d+)?)ms)?$"
)


def parse_at(text: str) -> At:
    """`+1m30s` / `+90s` / `+250ms` after the first event, or an ISO 8601 time (UTC
    unless it names its zone). ValueError says what is accepted."""
    text = text.strip()
    if text.startswith("+"):
        found = _DURATION.match(text)
        if found is None or text == "+":
            raise ValueError(f"{text!r} is not a duration like +90s, +1m30s or +1h2m")
        scale = {"h": 3_600_000_000, "m": 60_000_000, "s": 1_000_000, "ms": 1_000}
        return At(
            round(sum(float(v) * scale[k] for k, v in found.groupdict().items() if v)),
            relative=True,
        )
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither an ISO 8601 time (2026-11-02T09:00:05Z) nor a duration "
            "after the first event (+90s)"
        ) from None
    return At(micros_of(moment if moment.tzinfo else moment.replace(tzinfo=UTC)))


@dataclass
class Replay:
    conversation_id: str
    location: Location
    # Every record of the conversation found, and those up to the stop (what is shown
    # and folded), in offset order.
    recorded: list[Entry]
    entries: list[Entry]
    state: dict[str, list[Row]]
    records_read: int
    partition_end: int  # the end of the partition when it was read
    stopped: str | None = None  # where the clock was stopped, said for people
    notes: list[str] = field(default_factory=list)

    @property
    def topic(self) -> str:
        return self.location.topic

    @property
    def partition(self) -> int:
        return self.location.partition

    @cached_property
    def repeat_of(self) -> dict[int, int]:
        """Offset -> the earlier offset of the same event id, for each record that repeats
        an event (a file imported twice, a resend): it changes nothing, as in the
        projector, whose dedup this is."""
        events = [e for e in self.recorded if isinstance(e, RecordedEvent)]
        first = {e.event_id: e.offset for e in unique_events(events, skip=())}
        return {e.offset: first[e.event_id] for e in events if first[e.event_id] != e.offset}

    @property
    def events(self) -> list[RecordedEvent]:
        """The events up to the stop, each event id once (its first record): what the
        state folds."""
        repeats = self.repeat_of
        return [e for e in self.entries if isinstance(e, RecordedEvent) and e.offset not in repeats]

    @property
    def start_micros(self) -> int:
        """The first event's time: what transcript times are relative to."""
        return _start(self.recorded)

    @property
    def conversation(self) -> Row | None:
        rows = self.state.get("agentlog_conversations", [])
        return rows[0] if rows else None


Source = Literal["auto", "kafka", "archive"]


def replay_conversation(
    settings: Settings,
    conversation_id: str,
    *,
    sink_url: str | None = None,
    scan: bool = False,
    at: At | None = None,
    until_offset: int | None = None,
    idle_timeout: float = 30.0,
    on_note: Callable[[str], None] | None = None,
    source: Source = "auto",
    archive: ConversationArchive | None = None,
    kafka_unusable: str | None = None,
) -> Replay:
    """The conversation's records and its state, stopped at `at` (events that occurred
    then or before) and `until_offset` (offsets up to and including it), if given.

    Reads through the conversation_index of `sink_url` when it has one, else scans the
    conversation's partition (`scan` forces that). With an `archive` and `source` "auto",
    a conversation Kafka no longer holds (its topic gone or created again, its records
    deleted) is read from the archive, and records deleted from the start of the
    partition are taken from the archive; "archive" reads only the archive, "kafka" only
    Kafka. `kafka_unusable` says why Kafka cannot be read at all (none configured): with
    an archive and `source` "auto", the archive is read instead. Notes say which and why:
    in `Replay.notes`, and to `on_note` as soon as known (also before an error)."""
    topic = settings.events_topic
    notes: list[str] = []

    def note(text: str | None) -> None:
        if text:
            notes.append(text)
            if on_note is not None:
                on_note(text)

    if source == "archive" and archive is None:
        raise ReplayError("--source archive needs an archive; none was given")
    if source == "kafka":
        archive = None
    if source == "auto" and kafka_unusable is not None:
        if archive is None:
            raise ReplayError(f"{kafka_unusable}; and there is no archive to replay from")
        why = f": {kafka_unusable}"
        read = _from_archive(archive, topic, conversation_id, why)
        if read is None:
            raise ConversationNotFound(
                f"no conversation {conversation_id!r} of {topic} in the archive at "
                f"{archive.where}, and Kafka cannot be read ({kafka_unusable})"
            )
        note(read.location.note)
        return _stopped(conversation_id, read, at, until_offset, notes)
    if source == "archive":
        assert archive is not None
        read = _from_archive(archive, topic, conversation_id, ", as --source archive asks")
        if read is None:
            raise ConversationNotFound(
                f"no conversation {conversation_id!r} of {topic} in the archive at {archive.where}"
            )
        note(read.location.note)
        return _stopped(conversation_id, read, at, until_offset, notes)
    try:
        read = _from_kafka(
            settings, conversation_id, sink_url, scan, idle_timeout, note, archive is not None
        )
    except (ConversationNotFound, TopicError, BrokerUnavailable) as exc:
        if archive is None:
            raise
        why = (
            f": Kafka does not answer ({exc})"
            if isinstance(exc, BrokerUnavailable)
            else ": Kafka no longer holds it"
        )
        read = _from_archive(archive, topic, conversation_id, why)
        if read is None:
            raise type(exc)(f"{exc}; nor does the archive at {archive.where}") from None
        note(read.location.note)
        return _stopped(conversation_id, read, at, until_offset, notes)
    if archive is not None and read.log_start > 0:
        note(_add_deleted_records(read, archive, conversation_id))
    return _stopped(conversation_id, read, at, until_offset, notes)


@dataclass
class _Read:
    location: Location
    recorded: list[Entry]
    end: int
    records_read: int
    log_start: int = 0  # where the partition's log starts (0: not asked)


def _from_kafka(
    settings: Settings,
    conversation_id: str,
    sink_url: str | None,
    scan: bool,
    idle_timeout: float,
    note: Callable[[str | None], None],
    want_log_start: bool,
) -> _Read:
    key = conversation_id.encode()
    with PartitionReader(settings, settings.events_topic, idle_timeout=idle_timeout) as reader:
        location = locate(reader, conversation_id, sink_url=sink_url, scan=scan)
        note(location.note)
        recorded = _read(reader, location, key)
        end = reader.end(location.partition)
        found = [(e.offset, getattr(e, "event_id", None)) for e in recorded]
        mismatch = location.index_mismatch(end, found)
        if mismatch is not None:
            location = scan_location(reader, location.partition, mismatch)
            note(location.note)
            recorded = _read(reader, location, key)
            end = reader.end(location.partition)
        else:
            note(location.index_note(end))
        if not recorded:
            raise ConversationNotFound(
                _not_found(conversation_id, location, end, reader.records_read)
            )
        # Where the log starts, to tell whether retention deleted part of the conversation
        # that an archive still holds (a scan started there; the index's range may not).
        log_start = 0
        if location.method == "scan":
            log_start = location.ranges[0][0]
        elif want_log_start:
            log_start = reader.bounds(location.partition).start
        return _Read(location, recorded, end, reader.records_read, log_start)


def _from_archive(
    archive: ConversationArchive, topic: str, conversation_id: str, why: str
) -> _Read | None:
    """The conversation's archived events; `why` ends the note (": reason" or ", as ...")."""
    events = archive.conversation_events(topic, conversation_id)
    if not events:
        return None
    partition = events[0].partition
    where = f"from the archive at {archive.where}{why}"
    if why.startswith(","):
        where = f"read {where}"  # a sentence of its own, not a reason after a colon
    location = Location(
        topic, partition, ((events[0].offset, events[-1].offset + 1),), "archive", note=where
    )
    end = archive.archived_up_to(topic).get(partition, events[-1].offset + 1)
    return _Read(location, list(events), end, len(events))


def _add_deleted_records(
    read: _Read, archive: ConversationArchive, conversation_id: str
) -> str | None:
    """Put the conversation's archived events before the partition's log start in front of
    what Kafka still holds; returns the note saying so, or None if there were none."""
    location = read.location
    deleted = [
        e
        for e in archive.conversation_events(location.topic, conversation_id)
        if e.partition == location.partition and e.offset < read.log_start
    ]
    if not deleted:
        return None
    read.recorded = [*deleted, *(e for e in read.recorded if e.offset >= read.log_start)]
    events = f"{len(deleted):,} event" + ("" if len(deleted) == 1 else "s")
    return (
        f"{events} at offsets {deleted[0].offset}..{deleted[-1].offset} "
        f"from the archive at {archive.where}: Kafka no longer holds them (the log of "
        f"{location.topic}[{location.partition}] starts at {read.log_start})"
    )


def _stopped(
    conversation_id: str, read: _Read, at: At | None, until_offset: int | None, notes: list[str]
) -> Replay:
    recorded, location, end = read.recorded, read.location, read.end
    entries = recorded
    stops = []
    if until_offset is not None:
        entries = _until(entries, until_offset, conversation_id, location, end)
        stops.append(f"offset {until_offset}")
    if at is not None:
        entries = _at(entries, at, conversation_id, _start(recorded))
        stops.append(at.describe(_start(recorded)))
    events = [e for e in entries if isinstance(e, RecordedEvent)]
    return Replay(
        conversation_id,
        location,
        recorded,
        entries,
        conversation_state(events),
        read.records_read,
        end,
        " and ".join(stops) or None,
        notes,
    )


def _read(reader: PartitionReader, location: Location, key: bytes) -> list[Entry]:
    found: list[Entry] = []
    topic = location.topic
    for start, stop in location.ranges:
        for message in reader.read(location.partition, start, stop):
            if message.key() != key:
                continue
            try:
                found.append(recorded_event(message))
            except DecodeError as exc:
                value = message.value() or b""
                partition, offset = partition_offset(message)
                found.append(
                    Undecodable(
                        topic,
                        partition,
                        offset,
                        message.timestamp()[1] * 1000,
                        len(value),
                        exc.reason,
                    )
                )
    return found


def _not_found(conversation_id: str, location: Location, end: int, read: int) -> str:
    where = f"{location.topic}[{location.partition}]"
    if location.method == "scan":
        how = f"none of the {read} records of {where} (the partition its id hashes to) has it"
    elif read:
        how = (
            f"the conversation_index does not have it, nor do the {read} records of {where} "
            "it has not applied yet"
        )
    else:
        how = f"the conversation_index does not have it and has applied all {end} of {where}"
    return f"no conversation {conversation_id!r} on {location.topic}: {how}"


def _until(
    entries: list[Entry], offset: int, conversation_id: str, location: Location, end: int
) -> list[Entry]:
    if offset >= end:
        last = f"its last offset is {end - 1}" if end > 0 else "it is empty"
        raise OffsetBeyondEnd(
            f"--until-offset {offset} is beyond the end of {location.topic}"
            f"[{location.partition}]: {last}"
        )
    if offset < entries[0].offset:
        raise BeforeFirstEvent(
            f"--until-offset {offset} is before the first event of {conversation_id!r} "
            f"(offset {entries[0].offset} of {location.topic}[{location.partition}])"
        )
    return [e for e in entries if e.offset <= offset]


def _at(entries: list[Entry], at: At, conversation_id: str, start: int) -> list[Entry]:
    moment = at.resolve(start)
    if moment < start:
        raise BeforeFirstEvent(
            f"--at {iso(moment)} is before the first event of {conversation_id!r} ({iso(start)})"
        )
    return [e for e in entries if time_of(e) <= moment]


def _start(entries: list[Entry]) -> int:
    decoded = [e.occurred_at for e in entries if isinstance(e, RecordedEvent)]
    return decoded[0] if decoded else min((time_of(e) for e in entries), default=0)


def iso(micros: int) -> str:
    return datetime_of(micros).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def relative(micros: int) -> str:
    """+M:SS.mmm (or +H:MM:SS.mmm) after the start."""
    sign = "-" if micros < 0 else "+"
    millis = abs(micros) // 1000
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    if hours:
        return f"{sign}{hours}:{minutes:02d}:{seconds:02d}.{millis:03d}"
    return f"{sign}{minutes}:{seconds:02d}.{millis:03d}"
