"""State from events, by the one fold the projector runs.

The only place replay touches the fold: records become `RecordedEvent`s as the
projection runner makes them, and projections' handlers run on them by `Folder`:
over rows that start empty for one conversation (`conversation_state`: the rows the
live projection holds for it), or over a sink's stored rows batch by batch
(`fold_batch`: rebuilding projections).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from agentlog.consumers.fold import Batch, Folder
from agentlog.consumers.projection import Key, Projection, RecordedEvent, Row, Table
from agentlog.consumers.projections import BUILT_IN
from confluent_kafka import Message

from agentlog.events import EVENT_TYPE_BY_RECORD_NAME
from agentlog.serde import decode


def recorded_event(message: Message, topic: str) -> RecordedEvent:
    """The record decoded as the projector sees it; DecodeError names where it sits."""
    partition, offset = message.partition(), message.offset()
    record = decode(message.value(), topic=topic, partition=partition, offset=offset)
    name, body = record["payload"]
    return RecordedEvent(
        record["event_id"],
        record["conversation_id"],
        record["occurred_at"],
        EVENT_TYPE_BY_RECORD_NAME[name],
        body,
        record["source"],
        record["causation_id"],
        record["trace_id"],
        record["span_id"],
        topic,
        partition,
        offset,
    )


def conversation_state(events: Iterable[RecordedEvent]) -> dict[str, list[Row]]:
    """Table name -> the rows the built-in projections hold after `events` (in log
    order; a repeated event id counts once), sorted by key."""
    folder = Folder([p() for p in BUILT_IN.values()], handler_attempts=1, cache_rows=0)
    batch = Batch([(event, None) for event in events], [], {})

    def nothing_stored(table: Table, keys: list[Key]) -> dict[Key, Row]:
        return {}

    # An event a handler fails on changes nothing, as in the projector (which
    # dead-letters it): the state stays the live one.
    folder.fold(batch, set(), nothing_stored)
    return {
        name: sorted(batch.changed.get(name, []), key=lambda row, t=table: _key(t, row))
        for name, table in folder.tables.items()
    }


def _key(table: Table, row: Row) -> tuple:
    return tuple(row[column] for column in table.key)


@dataclass
class Folded:
    """What folding a batch decided: the events applied (repeats and events applied
    before left out), the rows they changed per table, and how many events a handler
    failed on (they change nothing, as in the projector)."""

    applied: list[RecordedEvent]
    changed: dict[str, list[Row]]
    failed: int


def projection_folder(projections: Iterable[Projection]) -> Folder:
    return Folder(projections, handler_attempts=3, cache_rows=200_000)


def tables_of(folder: Folder) -> dict[str, Table]:
    return folder.tables


def fold_batch(
    folder: Folder,
    events: list[RecordedEvent],
    applied_before: set[str],
    load: Callable[[Table, list[Key]], dict[Key, Row]],
) -> Folded:
    """Fold `events` over the stored rows (`load` reads them; the folder remembers the
    rows it produced, so a sink's uncommitted state is never needed)."""
    batch = Batch([(event, None) for event in events], [], {})
    folder.fold(batch, applied_before, load)
    return Folded(batch.applied, batch.changed, len(batch.dead))
