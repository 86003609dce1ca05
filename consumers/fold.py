"""The fold: events and the stored rows they touch in, the rows they change out.

`fold(projections, events, rows)` is all of it, and knows nothing of Kafka: the
projection runner folds each batch through a `Folder` (which also remembers rows
between batches), and replay or a test folds any list of events the same way. A fold
never changes the rows it is given: handlers change copies, and a fold whose batch is
later refused (fenced, or holding an event applied before) is simply thrown away.

For every event, a fold decides one of three things:
- left out, as a duplicate: its id is in `skip` (applied before) or repeats the id of
  an event earlier in the same fold;
- failed: its handlers raised on each of `handler_attempts` tries; it changes
  nothing, not even in the projections whose handlers did not raise;
- applied: its handlers' changes are in the rows returned.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field

from agentlog.consumers.projection import (
    Key,
    Position,
    Projection,
    RecordedEvent,
    Row,
    State,
    Table,
    all_tables,
)

# Rows as stored, per table: None for a key known to have no row.
Rows = dict[str, dict[Key, Row | None]]
# Rows a fold changed, per table: each as the events left it.
Changed = dict[str, dict[Key, Row]]
Loader = Callable[[Table, list[Key]], dict[Key, Row]]
Handler = Callable[[RecordedEvent, State], None]


@dataclass
class Folded:
    """What folding some events decided."""

    changed: Changed
    applied: list[RecordedEvent]
    failed: list[tuple[RecordedEvent, Exception]]
    duplicates: int


class Plan:
    """The tables of some projections, and the handlers of each event type."""

    def __init__(self, projections: Iterable[Projection]) -> None:
        projections = list(projections)
        self.tables = all_tables(projections)
        self.handlers: dict[str, list[Handler]] = {}
        for projection in projections:
            for event_type, methods in projection.handlers.items():
                self.handlers.setdefault(event_type, []).extend(methods)


def fold(
    projections: Iterable[Projection] | Plan,
    events: Iterable[RecordedEvent],
    rows: Mapping[str, Mapping[Key, Row | None]] | None = None,
    *,
    load: Loader | None = None,
    skip: Collection[str] = frozenset(),
    handler_attempts: int = 3,
) -> Folded:
    """Fold `events`, in order, into `rows` (per table, the stored rows by key; a key
    that is absent is looked up with `load`, or has no row if there is no `load`)."""
    plan = projections if isinstance(projections, Plan) else Plan(projections)
    events = list(events)
    to_apply = unique_events(events, skip)
    given = rows or {}
    base: Rows = {name: dict(given.get(name, {})) for name in plan.tables}
    if load is not None:
        for name, table in plan.tables.items():
            known = base[name]
            missing = [k for k in keys_of(table, to_apply) if k not in known]
            found = load(table, missing) if missing else {}
            for key in missing:
                known[key] = found.get(key)
    changed, failed = apply(plan, to_apply, base, _one_by_one(load), handler_attempts)
    failed_ids = {event.event_id for event, _ in failed}
    return Folded(
        changed,
        [e for e in to_apply if e.event_id not in failed_ids],
        failed,
        len(events) - len(to_apply),
    )


def unique_events(events: Iterable[RecordedEvent], skip: Collection[str]) -> list[RecordedEvent]:
    """The events to apply: none whose id is in `skip`, each id once (its first event)."""
    unique: dict[str, RecordedEvent] = {}
    for event in events:
        if event.event_id not in skip:
            unique.setdefault(event.event_id, event)
    return list(unique.values())


def keys_of(table: Table, events: Iterable[RecordedEvent]) -> set[Key]:
    """The keys of `table` that these events may touch."""
    keys = {table.key_of(e) for e in events}
    keys.discard(None)
    return keys  # type: ignore[return-value]


def apply(
    plan: Plan,
    events: list[RecordedEvent],
    base: Rows,
    load_one: Callable[[Table, Key], Row | None],
    handler_attempts: int,
) -> tuple[Changed, list[tuple[RecordedEvent, Exception]]]:
    """Run the handlers of `events` over `base`, which ends up holding the rows the
    applied events left (so a caller may keep it); the rows changed, and the events that
    failed with their last error."""
    changed, raised = _apply_all(plan, events, base, load_one)
    if changed is not None:
        for name, table_rows in changed.items():
            base[name].update(table_rows)
        return changed, []
    return _apply_each(plan, events, base, load_one, handler_attempts, raised)


def _apply_all(
    plan: Plan,
    events: list[RecordedEvent],
    base: Rows,
    load_one: Callable[[Table, Key], Row | None],
) -> tuple[Changed | None, tuple[RecordedEvent, Exception] | None]:
    """All events on one running state: the common case. If a handler raises: no rows,
    and the event it raised for with the error; `base` is untouched then, so the events
    can be applied again one by one."""
    state = State(plan.tables, base, load_one)
    handlers_of = plan.handlers.get
    for event in events:
        try:
            for handler in handlers_of(event.event_type, ()):
                handler(event, state)
        except Exception as exc:  # a projection bug must not stop the log
            return None, (event, exc)
    return state.changed, None


def _apply_each(
    plan: Plan,
    events: list[RecordedEvent],
    base: Rows,
    load_one: Callable[[Table, Key], Row | None],
    handler_attempts: int,
    raised: tuple[RecordedEvent, Exception] | None,
) -> tuple[Changed, list[tuple[RecordedEvent, Exception]]]:
    """Event by event, each on its own state over the rows so far (kept in `base`): an
    event whose handlers fail every attempt changes nothing. The event that `raised`
    has used one attempt already, on the rows it sees now."""
    changed: Changed = {name: {} for name in plan.tables}
    failed: list[tuple[RecordedEvent, Exception]] = []
    tried, first_error = raised or (None, None)
    for event in events:
        handlers = plan.handlers.get(event.event_type, ())
        error = first_error if event is tried else None
        for _ in range(handler_attempts - (event is tried)):
            state = State(plan.tables, base, load_one)
            try:
                for handler in handlers:
                    handler(event, state)
            except Exception as exc:
                error = exc
                continue
            error = None
            break
        if error is not None:
            failed.append((event, error))
            continue
        for name, table_rows in state.changed.items():
            base[name].update(table_rows)
            changed[name].update(table_rows)
    return changed, failed


def _one_by_one(load: Loader | None) -> Callable[[Table, Key], Row | None]:
    """A look-up of one row that no prefetch foresaw."""
    if load is None:
        return lambda table, key: None
    return lambda table, key: load(table, [key]).get(key)


@dataclass
class Batch:
    """Records on their way to the sink, and what folding them decided."""

    events: list[RecordedEvent]
    # (where, error, attempts): undecodable records and events whose handlers failed
    dead: list[tuple[Position, str, int]]
    ends: dict[int, int]  # partition -> offset after its last record here
    applied: list[RecordedEvent] = field(default_factory=list)
    duplicates: int = 0
    changed: dict[str, list[Row]] = field(default_factory=dict)


class Folder:
    """Folds the runner's batches, keeping the rows it has seen.

    The cache holds rows of the partitions this member owns. Reusing them is safe:
    another writer of those rows must first move the partition's offsets, which fences
    this member, and the runner then forgets the cache before folding again.
    """

    def __init__(
        self, projections: Iterable[Projection], *, handler_attempts: int, cache_rows: int
    ) -> None:
        self.plan = Plan(projections)
        self.tables = self.plan.tables
        self.handler_attempts = handler_attempts
        self.cache: Rows = {name: {} for name in self.tables}
        self.cache_rows = cache_rows

    def fold(self, batch: Batch, skip: Collection[str], load: Loader) -> None:
        """Fold the batch's events (see `fold`); the rows it changes are remembered."""
        to_apply = unique_events(batch.events, skip)
        base = self._prefetch(to_apply, load)
        changed, failed = apply(self.plan, to_apply, base, _one_by_one(load), self.handler_attempts)
        failed_ids = {event.event_id for event, _ in failed}
        for event, error in failed:
            reason = f"handler failed: {type(error).__name__}: {error}"
            batch.dead.append((event.position, reason, self.handler_attempts))
        batch.applied = (
            [e for e in to_apply if e.event_id not in failed_ids] if failed else to_apply
        )
        batch.duplicates = len(batch.events) - len(to_apply)
        batch.changed = {name: list(rows.values()) for name, rows in changed.items() if rows}
        self._remember(base)

    def forget(self) -> None:
        for cached in self.cache.values():
            cached.clear()

    def _prefetch(self, events: list[RecordedEvent], load: Loader) -> Rows:
        rows: Rows = {}
        for name, table in self.tables.items():
            cached = self.cache[name]
            keys = keys_of(table, events)
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
