"""A record of the log as the event its readers see: `recorded_event(message)`.

The one conversion from a Kafka record to a `RecordedEvent`, used by the projector, the
trigger runtime and replay alike, so the three cannot disagree on what an event holds.

The timestamp rule: `occurred_at` is the envelope's own field (UTC microseconds), the
time the event happened, the one every handler, fold and export uses. The Kafka record
timestamp is where the record sits in the log's time (`timestamp_ms`, milliseconds, or
None when the record has none); agentlog's producers set it to `occurred_at`, but a
producer that bypasses them, or a topic with LogAppendTime, may not, and it is never
substituted for `occurred_at`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message

from agentlog.claim_check import BlobStore
from agentlog.errors import BrokerUnavailable, DecodeError
from agentlog.events import EVENT_TYPE_BY_RECORD_NAME
from agentlog.serde import decode


class Position(NamedTuple):
    """Where a record sits in the log. `timestamp_ms` is the Kafka record timestamp
    (milliseconds since the epoch; None where the log holds none)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None


@dataclass(slots=True)
class RecordedEvent:
    """One decoded event and where it sits in the log. `occurred_at` is UTC microseconds.

    Made by `recorded_event` from a record of the log (the projection runner, the
    trigger runtime, replay), or by `event_of` from a record already decoded."""

    event_id: str
    conversation_id: str
    occurred_at: int
    event_type: str
    payload: dict[str, Any]
    source: dict[str, Any]
    causation_id: str | None
    trace_id: str | None
    span_id: str | None
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None

    @property
    def position(self) -> Position:
        return Position(self.topic, self.partition, self.offset, self.timestamp_ms)


def recorded_event(message: Message, *, blobs: BlobStore | None = None) -> RecordedEvent:
    """The event a record of the log holds, where it sits, and its Kafka timestamp (None
    when the record has none). DecodeError, naming where the record sits, for anything
    that is not an agentlog event; `blobs` resolves claim checks (default: the store the
    environment's settings name)."""
    position = position_of(message)
    topic, partition, offset, _ = position
    record = decode(message.value(), topic=topic, partition=partition, offset=offset, blobs=blobs)
    return event_of(record, position)


def position_of(message: Message) -> Position:
    """Where a record sits, with its Kafka timestamp (None when the record has none)."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    if topic is None or partition is None or offset is None:
        raise BrokerUnavailable(f"Kafka client error: {message.error()}")
    kind, stamp = message.timestamp()
    return Position(topic, partition, offset, None if kind == TIMESTAMP_NOT_AVAILABLE else stamp)


def event_of(record: Mapping[str, Any], position: Position) -> RecordedEvent:
    """The event of a record as `agentlog.serde.decode` returns it, at `position`."""
    name, body = record["payload"]
    event_type = EVENT_TYPE_BY_RECORD_NAME.get(name)
    if event_type is None:
        topic, partition, offset, _ = position
        raise DecodeError(
            f"unknown payload type {name!r}", topic=topic, partition=partition, offset=offset
        )
    return RecordedEvent(
        record["event_id"],
        record["conversation_id"],
        record["occurred_at"],
        event_type,
        body,
        record["source"],
        record["causation_id"],
        record["trace_id"],
        record["span_id"],
        *position,
    )
