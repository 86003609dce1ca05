"""Folding a batch of decoded events into the rows they change.

A fold is a pure function of the stored rows and the events: it reads rows (from a
cache of the rows this member owns, else from the sink) and never changes them, so a
fold whose batch is later refused (fenced, or holding an event applied before) is
simply thrown away.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from confluent_kafka import Message

from agentlog.consumers.projection import (
    Key,
    Projection,
    RecordedEvent,
    Row,
    State,
    Table,
    all_tables,
)

# Rows as stored: None for a key that has no row.
Rows = dict[str, dict[Key, Row | None]]
Loader = Callable[[Table, list[Key]], dict[Key, Row]]


@dataclass
class Batch:
    """Records on their way to the sink, and what folding them decided."""

    events: list[tuple[RecordedEvent, Message]]
    # (record, error, attempts): undecodable records and events whose handlers failed
    dead: list[tuple[Message, str, int]]
    ends: dict[int, int]  # partition -> offset after its last record here
    applied: list[RecordedEvent] = field(default_factory=list)
    duplicates: int = 0
    changed: dict[str, list[Row]] = field(default_factory=dict)


class Folder:
    """Runs the projections' handlers over batches, keeping the rows it has seen.

    The cache holds rows of the partitions this member owns. Reusing them is safe:
    another writer of those rows must first move the partition's offsets, which fences
    this member, and the runner then forgets the cache before folding again.
    """

    def __init__(
        self, projections: Iterable[Projection], *, handler_attempts: int, cache_rows: int
    ) -> None:
        projections = list(projections)
        self.tables = all_tables(projections)
        self.handlers: dict[str, list[Callable[[RecordedEvent, State], None]]] = {}
        for projection in projections:
            for event_type, methods in projection.handlers.items():
                self.handlers.setdefault(event_type, []).extend(methods)
        self.handler_attempts = handler_attempts
        self.cache: Rows = {name: {} for name in self.tables}
        self.cache_rows = cache_rows

    def fold(self, batch: Batch, skip: set[str], load: Loader) -> None:
        """Fold the batch's events, leaving out those in `skip` (applied before) and
        repeats of an event id within the batch; the rows it changes are remembered."""
        unique: dict[str, tuple[RecordedEvent, Message]] = {}
        for event, message in batch.events:
            if event.event_id not in skip:
                unique.setdefault(event.event_id, (event, message))
        to_apply = list(unique.values())
        base = self._prefetch([e for e, _ in to_apply], load)

        def load_one(table: Table, key: Key) -> Row | None:  # a row no prefetch foresaw
            return load(table, [key]).get(key)

        changed = self._fold_all(to_apply, base, load_one)
        failed: list[tuple[RecordedEvent, Message, Exception]] = []
        if changed is None:
            changed, failed = self._fold_each(to_apply, base, load_one)
        failed_ids = {event.event_id for event, _, _ in failed}
        for _, message, error in failed:
            reason = f"handler failed: {type(error).__name__}: {error}"
            batch.dead.append((message, reason, self.handler_attempts))
        batch.applied = [e for e, _ in to_apply if e.event_id not in failed_ids]
        batch.duplicates = len(batch.events) - len(to_apply)
        batch.changed = {name: list(rows.values()) for name, rows in changed.items() if rows}
        for name, rows in changed.items():
            base[name].update(rows)
        self._remember(base)

    def forget(self) -> None:
        for cached in self.cache.values():
            cached.clear()

    def _fold_all(
        self,
        to_apply: list[tuple[RecordedEvent, Message]],
        base: Rows,
        load: Callable[[Table, Key], Row | None],
    ) -> dict[str, dict[Key, Row]] | None:
        """The whole batch on one running state: the common case. None if any handler
        raised; `base` is untouched then, so the batch can be folded again event by event."""
        state = State(self.tables, base, load)
        handlers_of = self.handlers.get
        try:
            for event, _ in to_apply:
                for handler in handlers_of(event.event_type, ()):
                    handler(event, state)
        except Exception:  # a projection bug must not stop the log
            return None
        return state.changed

    def _fold_each(
        self,
        to_apply: list[tuple[RecordedEvent, Message]],
        base: Rows,
        load: Callable[[Table, Key], Row | None],
    ) -> tuple[dict[str, dict[Key, Row]], list[tuple[RecordedEvent, Message, Exception]]]:
        """Event by event, each on its own state over the rows so far (kept in `base`):
        an event whose handlers fail every attempt changes nothing and is returned with
        its error."""
        changed: dict[str, dict[Key, Row]] = {name: {} for name in self.tables}
        failed = []
        for event, message in to_apply:
            handlers = self.handlers.get(event.event_type, ())
            error: Exception | None = None
            for _ in range(self.handler_attempts):
                state = State(self.tables, base, load)
                try:
                    for handler in handlers:
                        handler(event, state)
                except Exception as exc:
                    error = exc
                    continue
                error = None
                break
            if error is not None:
                failed.append((event, message, error))
                continue
            for name, table_rows in state.changed.items():
                base[name].update(table_rows)
                changed[name].update(table_rows)
        return changed, failed

    def _prefetch(self, events: list[RecordedEvent], load: Loader) -> Rows:
        rows: Rows = {}
        for name, table in self.tables.items():
            cached = self.cache[name]
            keys = {key for e in events if (key := table.key_of(e)) is not None}
            missing = [k for k in keys if k not in cached]
            found = load(table, missing) if missing else {}
            rows[name] = {k: cached[k] if k in cached else found.get(k) for k in keys}
        return rows

    def _remember(self, rows: Rows) -> None:
        for name, table_rows in rows.items():
            cached = self.cache[name]
            if len(cached) + len(table_rows) > self.cache_rows:
                cached.clear()
            cached.update(table_rows)
