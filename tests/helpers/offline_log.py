"""A log without a broker, for the fast tests: events recorded through the SDK's own
recording methods and encoder into in-memory partitions (by the Kafka partitioner), as
records shaped like kafka-python's ConsumerRecords; and agentlog's side of reading
them: decode, `event_of`, `fold`."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agentlog.consumers import BUILT_IN
from agentlog.consumers.fold import Folded, fold
from agentlog.consumers.projection import Projection
from agentlog.demo.simulation import SimulatedClock, seeded_event_ids, simulate
from agentlog.event_ids import canonical_event_id
from agentlog.partitioner import partition_for
from agentlog.producers._payloads import EventMethods
from agentlog.recorded import Position, RecordedEvent, event_of
from agentlog.serde import EventEncoder, decode, micros_of

TOPIC = "offline.events"


@dataclass(frozen=True)
class LoggedRecord:
    topic: str
    partition: int
    offset: int
    timestamp: int  # milliseconds, as Kafka's record timestamp
    key: bytes
    value: bytes


class OfflineLog(EventMethods[str]):
    """A recorder whose events land in `records` instead of on a broker."""

    def __init__(
        self,
        *,
        partitions: int = 3,
        clock_micros=None,
        new_event_id=None,
        service: str = "offline",
    ) -> None:
        self.partitions = partitions
        self.records: list[LoggedRecord] = []
        self._next_offset = [0] * partitions
        self._encode = EventEncoder().encode_fields
        self._clock = clock_micros or SimulatedClock()
        ids = random.Random(0)
        self._new_event_id = new_event_id or seeded_event_ids(ids)
        self._service = service

    def _emit(
        self,
        conversation_id: str,
        payload: tuple[str, dict[str, Any]],
        agent: str | None,
        causation_id: str | None = None,
        trace_id: str | None = None,
        span_id: str | None = None,
        occurred_at: datetime | None = None,
        event_id: str | None = None,
    ) -> str:
        micros = self._clock() if occurred_at is None else micros_of(occurred_at)
        event_id = self._new_event_id() if event_id is None else canonical_event_id(event_id)
        source = {"service": self._service, "agent": agent, "version": None}
        value = self._encode(
            event_id, conversation_id, micros, source, trace_id, span_id, causation_id, payload
        )
        self.append(conversation_id.encode(), value, micros // 1000)
        return event_id

    def append(self, key: bytes, value: bytes, timestamp_ms: int) -> LoggedRecord:
        """Any bytes, as a producer would put them on the topic."""
        partition = partition_for(key.decode(), self.partitions)
        record = LoggedRecord(
            TOPIC, partition, self._next_offset[partition], timestamp_ms, key, value
        )
        self._next_offset[partition] += 1
        self.records.append(record)
        return record


def simulated_log(conversations: int, seed: int = 3, partitions: int = 3) -> OfflineLog:
    """The demo's simulated support system, recorded offline."""
    clock = SimulatedClock()
    log = OfflineLog(
        partitions=partitions,
        clock_micros=clock,
        new_event_id=seeded_event_ids(random.Random(seed)),
    )
    simulate(log, clock, conversations, seed)  # type: ignore[arg-type]
    return log


def events_of(records: Iterable[LoggedRecord]) -> list[RecordedEvent]:
    """What the projection runner hands the fold: decoded, in (partition, offset) order."""
    return [
        event_of(
            decode(r.value, topic=r.topic, partition=r.partition, offset=r.offset),
            Position(r.topic, r.partition, r.offset, r.timestamp),
        )
        for r in sorted(records, key=lambda r: (r.partition, r.offset))
    ]


def built_ins() -> list[Projection]:
    return [p() for p in BUILT_IN.values()]


def tables_of(folded: Folded) -> dict[str, list[dict]]:
    """Every row of a fold from nothing, per table."""
    return {name: list(rows.values()) for name, rows in folded.changed.items()}


def fold_log(records: Iterable[LoggedRecord], projections=None) -> Folded:
    return fold(projections or built_ins(), events_of(records))


def store(sink, folded: Folded, projections=None, group: str = "g") -> None:
    """Write what a fold from nothing changed into a sink, as one batch would."""
    tables = {t.name: t for p in projections or built_ins() for t in p.tables}
    sink.prepare(tables.values(), group)
    with sink.transaction(group, TOPIC) as tx:
        for name, rows in folded.changed.items():
            tx.upsert(tables[name], list(rows.values()))
