"""State from events, by the one fold the projector runs.

The only place replay touches the fold: records become `RecordedEvent`s by the one
conversion the projection runner uses too (`agentlog.recorded.recorded_event`), and
projections' handlers run on them by `Folder`: over rows that start empty for one
conversation (`conversation_state`: the rows the live projection holds for it), or over
a sink's stored rows batch by batch (`fold_batch`: rebuilding projections).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

from agentlog.consumers.fold import Batch, Folder, fold
from agentlog.consumers.projection import Key, Projection, RecordedEvent, Row, Table
from agentlog.consumers.projections import BUILT_IN


def conversation_state(events: Iterable[RecordedEvent]) -> dict[str, list[Row]]:
    """Table name -> the rows the built-in projections hold after `events` (in log
    order; a repeated event id counts once), sorted by key. An event a handler fails
    on changes nothing, as in the projector (which dead-letters it)."""
    projections = [p() for p in BUILT_IN.values()]
    folded = fold(projections, events, handler_attempts=1)
    tables = {t.name: t for p in projections for t in p.tables}
    return {
        name: sorted(folded.changed.get(name, {}).values(), key=partial(_key, table))
        for name, table in tables.items()
    }


def _key(table: Table, row: Row) -> tuple[Any, ...]:
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
    batch = Batch(events, [], {})
    folder.fold(batch, applied_before, load)
    return Folded(batch.applied, batch.changed, len(batch.dead))
