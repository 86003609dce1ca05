"""`agentlog tail`: the last events of a topic in time order, like `tail` does for
lines; `--from-beginning` for all of them, `--follow` to keep printing new ones."""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import click
import orjson
from confluent_kafka import Message

from agentlog.cli._app import AppContext, cli, pass_app
from agentlog.consumers import dead_letters as dl
from agentlog.display import visible
from agentlog.errors import DecodeError
from agentlog.events import EVENT_TYPES
from agentlog.partitioner import partition_for
from agentlog.reader import partition_ends, partition_offset, read_partitions
from agentlog.render import as_json, event_type_of, one_line
from agentlog.serde import AvroDict, decode
from agentlog.settings import Settings
from agentlog.tool_protocol import start_marker
from agentlog.topics import partition_count

TOPICS = ("events", "tool-requests", "dlq")


@dataclass(frozen=True)
class Shown:
    """One record to print: decoded when it is an agentlog event."""

    timestamp_ms: int
    partition: int
    offset: int
    record: AvroDict | None
    problem: str | None  # why it could not be decoded
    size: int
    note: str | None = None  # what a record that is no event is (a worker's marker)
    letter: Letter | None = None  # a dead letter's origin and error, from its headers


@dataclass(frozen=True)
class Letter:
    """Where a dead letter came from and why, as its headers say (agentlog's, else
    Kafka Connect's)."""

    topic: str | None
    partition: str | None
    offset: str | None
    error: str | None
    attempts: str | None
    group: str | None

    def describe(self) -> str:
        where = f"{self.topic}[{self.partition}]@{self.offset}"
        facts = [f"group {self.group}"] if self.group else []
        if self.attempts is not None:
            facts.append(f"{self.attempts} attempt" + ("" if self.attempts == "1" else "s"))
        told = ", ".join(facts)
        # The headers are whoever produced the letter's words: shown, never emitted.
        told = f" ({told})" if told else ""
        return visible(f"dead letter of {where}{told}: {self.error}")

    def as_dict(self) -> dict[str, str | int | None]:
        return {
            "topic": self.topic,
            "partition": _int(self.partition),
            "offset": _int(self.offset),
            "error": self.error,
            "attempts": _int(self.attempts),
            "consumer_group": self.group,
        }


def _int(text: str | None) -> int | str | None:
    return int(text) if text is not None and text.isdigit() else text


def letter_of(message: Message) -> Letter | None:
    """The dead-letter headers of a record, or None if it has none."""
    found: dict[str, str] = {}
    # A consumed record's headers are (name, bytes) pairs.
    for name, value in cast(list[tuple[str, bytes | None]], message.headers() or []):
        if value is not None:
            found[name] = value.decode("utf-8", "replace")
    topic = found.get(dl.ORIGIN_TOPIC, found.get(dl.CONNECT_TOPIC))
    if topic is None:
        return None
    return Letter(
        topic,
        found.get(dl.ORIGIN_PARTITION, found.get(dl.CONNECT_PARTITION)),
        found.get(dl.ORIGIN_OFFSET, found.get(dl.CONNECT_OFFSET)),
        found.get(dl.ERROR, found.get(dl.CONNECT_EXCEPTION_MESSAGE)),
        found.get(dl.ATTEMPTS),
        found.get(dl.CONSUMER_GROUP),
    )


@cli.command()
@click.option(
    "--lines",
    "-n",
    "count",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="how many of the last events to print",
)
@click.option("--from-beginning", is_flag=True, help="print every event from the start")
@click.option("--follow", "-f", is_flag=True, help="then keep printing new events")
@click.option("--conversation", "-c", metavar="ID", help="only this conversation")
@click.option(
    "--type",
    "-t",
    "types",
    multiple=True,
    type=click.Choice(EVENT_TYPES),
    help="only these event types (repeatable)",
)
@click.option(
    "--topic",
    type=click.Choice(TOPICS),
    default="events",
    show_default=True,
    help="which agentlog topic",
)
@click.option("--json", "as_json_lines", is_flag=True, help="one JSON object per line")
@pass_app
def tail(
    app: AppContext,
    count: int,
    from_beginning: bool,
    follow: bool,
    conversation: str | None,
    types: tuple[str, ...],
    topic: str,
    as_json_lines: bool,
) -> None:
    """Print the last N events in time order (all with --from-beginning), then follow."""
    settings = app.kafka_settings()
    name = {
        "events": settings.events_topic,
        "tool-requests": settings.tool_requests_topic,
        "dlq": settings.dlq_topic,
    }[topic]
    partitions = list(range(partition_count(settings, name)))
    if conversation is not None:
        # A conversation lives in one partition: read only that one.
        partitions = [partition_for(conversation, len(partitions))]

    undecodable = 0
    printed = 0

    def wanted(shown: Shown) -> bool:
        if shown.record is None:
            return True  # whatever the filters: a record nobody can read is always reported
        if conversation is not None and shown.record["conversation_id"] != conversation:
            return False
        return not types or event_type_of(shown.record) in types

    def emit_letter(shown: Shown, letter: Letter) -> None:
        """A dead letter: the event (or its size, if it is none) and where it came from."""
        where = {"topic": name, "partition": shown.partition, "offset": shown.offset}
        if as_json_lines:
            line = {**where, "size": shown.size, "problem": shown.problem}
            if shown.record is not None:
                line = orjson.loads(as_json(shown.record, name, shown.partition, shown.offset))
            click.echo(orjson.dumps({**line, "dead_letter": letter.as_dict()}).decode())
        elif shown.record is not None:
            event = one_line(shown.record, shown.partition, shown.offset)
            click.echo(f"{event} <- {letter.describe()}")
        else:
            click.echo(
                f"p{shown.partition}@{shown.offset}, {shown.size} bytes <- {letter.describe()}"
            )

    def emit(shown: Shown) -> None:
        nonlocal undecodable, printed
        printed += 1
        if shown.note is not None:
            click.echo(f"p{shown.partition}@{shown.offset} {visible(shown.note)}")
        elif shown.letter is not None:
            emit_letter(shown, shown.letter)
        elif shown.record is None:
            undecodable += 1
            click.echo(
                f"warning: p{shown.partition}@{shown.offset}, {shown.size} bytes: "
                f"{visible(shown.problem)}",
                err=True,
            )
        elif as_json_lines:
            click.echo(as_json(shown.record, name, shown.partition, shown.offset))
        else:
            click.echo(one_line(shown.record, shown.partition, shown.offset))

    ends = partition_ends(settings, name) if partitions else {}
    ends = {p: ends.get(p, 0) for p in partitions}
    if from_beginning:
        # Streamed as read: each conversation (one partition) in order, memory bounded.
        for message in read_partitions(settings, name, partitions=partitions):
            shown = _shown(message, name)
            if wanted(shown):
                emit(shown)
    else:
        filtered = conversation is not None or bool(types)
        for shown in _last(settings, name, ends, count, wanted, filtered=filtered):
            emit(shown)
    try:
        if follow:
            for message in read_partitions(
                settings, name, partitions=partitions, start_offsets=ends, follow=True
            ):
                shown = _shown(message, name)
                if wanted(shown):
                    emit(shown)
    finally:
        if not printed and not follow:
            click.echo(f"note: {_nothing_found(name, conversation, types)}", err=True)
        if undecodable:
            could_not = "record could not" if undecodable == 1 else "records could not"
            click.echo(f"{undecodable:,} {could_not} be decoded (see warnings)", err=True)


def _nothing_found(topic: str, conversation: str | None, types: tuple[str, ...]) -> str:
    """Why nothing was printed, said so that it is not mistaken for a hang or an error."""
    kinds = " or ".join(types) + " " if types else ""
    if conversation is not None:
        return (
            f"no {kinds}events of conversation {conversation} on {topic} (none in the "
            "partition its id hashes to: is the id right?)"
        )
    if types:
        return f"no {kinds}events on {topic}"
    return f"no records on {topic}"


def _shown(message: Message, topic: str) -> Shown:
    value = message.value() or b""
    partition, offset = partition_offset(message)
    letter = letter_of(message)
    try:
        record: AvroDict | None = decode(value, topic=topic, partition=partition, offset=offset)
        problem = None
    except DecodeError as exc:
        marker = start_marker(message.headers()) or dl.control_note(message)
        if marker is not None:
            return Shown(message.timestamp()[1], partition, offset, None, None, len(value), marker)
        record, problem = None, exc.reason if letter is not None else str(exc)
    return Shown(
        message.timestamp()[1], partition, offset, record, problem, len(value), None, letter
    )


def _last(
    settings: Settings,
    topic: str,
    ends: dict[int, int],
    count: int,
    wanted: Callable[[Shown], bool],
    *,
    filtered: bool,
) -> list[Shown]:
    """The last `count` wanted records across partitions, in record-time order.
    Unfiltered, each partition is read from `count` records before its end; filtered,
    from its start (the last matches may lie anywhere), keeping `count` per partition."""
    starts = {} if filtered else {p: max(0, end - count) for p, end in ends.items()}
    kept: dict[int, deque[Shown]] = {p: deque(maxlen=count) for p in ends}
    if ends:
        for message in read_partitions(
            settings, topic, partitions=list(ends), start_offsets=starts
        ):
            shown = _shown(message, topic)
            if wanted(shown):
                kept[shown.partition].append(shown)
    merged = heapq.merge(*kept.values(), key=lambda s: (s.timestamp_ms, s.partition, s.offset))
    return list(deque(merged, maxlen=count))
