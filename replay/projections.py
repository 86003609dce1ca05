"""Rebuild projections from the log into a fresh sink and compare them with the live one.

The rebuild replays, per partition, exactly the offsets the live sink has applied
([start, applied)), so the two must agree row for row: a difference is a projection
that is not a pure function of the log, or a live sink that lost or gained something.
It folds with the projector's own fold and stores through the sink contract (rows,
offsets and event ids in one transaction per batch), as the projector does.

`since` narrows it to the conversations active at or after a time: the live sink's
conversation_index says where the earliest of them starts in each partition (an index
of our own, as Tansu cannot seek by time), the rebuild reads from there and folds only
those conversations, and only their rows are compared.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from confluent_kafka import Message

from agentlog.consumers.fold import Folder
from agentlog.consumers.projection import Key, Projection, Row, Table
from agentlog.consumers.projections import BUILT_IN
from agentlog.consumers.projections.conversation_index import TABLE as INDEX_TABLE
from agentlog.consumers.sinks import Sink, open_sink
from agentlog.consumers.sinks.sql import OWNERS_TABLE, Dialect, quoted
from agentlog.errors import DecodeError, ReplayError
from agentlog.reader import PartitionReader, partition_offset
from agentlog.recorded import recorded_event
from agentlog.replay.state import fold_batch, projection_folder, tables_of
from agentlog.secret_redaction import without_secrets
from agentlog.settings import Settings

REBUILD_GROUP = "agentlog-rebuild"
_EXAMPLES = 20


@dataclass
class Progress:
    done: int  # offsets replayed
    total: int
    events: int
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        return self.events / max(time.monotonic() - self.started, 1e-9)


@dataclass
class TableDiff:
    table: str
    compared: int  # rows in scope, live and rebuilt together
    only_live: list[Key] = field(default_factory=list)
    only_rebuilt: list[Key] = field(default_factory=list)
    differing: list[tuple[Key, list[str]]] = field(default_factory=list)

    @property
    def differences(self) -> int:
        return len(self.only_live) + len(self.only_rebuilt) + len(self.differing)


@dataclass
class Rebuild:
    ranges: dict[int, tuple[int, int]]
    events: int
    repeats: int  # events applied before (a producer's retry): they change nothing
    undecodable: int
    failed: int
    tables: list[TableDiff]
    seconds: float
    moved: str | None = None  # the live projector applied more while we compared

    @property
    def differences(self) -> int:
        return sum(t.differences for t in self.tables)


ProgressCallback = Callable[[Progress], None]


def rebuild_projections(
    settings: Settings,
    *,
    live_url: str,
    into_url: str,
    since_micros: int | None = None,
    projections: Iterable[Projection] | None = None,
    batch_size: int = 10_000,
    on_progress: ProgressCallback | None = None,
) -> Rebuild:
    if into_url == live_url:
        raise ReplayError(
            f"rebuild into a fresh sink, not the live one ({without_secrets(live_url)})"
        )
    chosen = list(projections) if projections is not None else [p() for p in BUILT_IN.values()]
    folder = projection_folder(chosen)
    tables = tables_of(folder)
    topic = settings.events_topic
    started = time.monotonic()
    with open_sink(live_url, read_only=True) as live:
        group = _owner(live, tables)
        applied = live.stored_offsets(group, topic)
        if not applied:
            raise ReplayError(
                f"{live.description} holds nothing projected from {topic}: nothing to compare "
                "a rebuild with (run `agentlog project run`)"
            )
        scope = None
        starts: dict[int, int] = {}
        if since_micros is not None:
            starts, scope = _since(live, since_micros, applied)
    ranges = {p: (starts.get(p, 0), stop) for p, stop in sorted(applied.items())}
    if since_micros is not None:
        ranges = {p: (starts.get(p, stop), stop) for p, (_, stop) in ranges.items()}
    progress = Progress(0, sum(stop - start for start, stop in ranges.values()), 0)
    counts = {"repeats": 0, "undecodable": 0, "failed": 0}
    with open_sink(into_url) as into:
        if into.stored_offsets(REBUILD_GROUP, topic):
            raise ReplayError(
                f"{into.description} already holds a rebuild of {topic}: rebuild into a fresh sink"
            )
        into.prepare(tables.values(), REBUILD_GROUP)
        with PartitionReader(settings, topic) as reader:
            for partition, (start, stop) in ranges.items():
                _replay_partition(
                    reader,
                    into,
                    folder,
                    (partition, start, stop),
                    scope,
                    batch_size,
                    progress,
                    counts,
                    on_progress,
                )
        with open_sink(live_url, read_only=True) as live:
            diffs = [_compare(live, into, table, scope) for table in tables.values()]
            now = live.stored_offsets(group, topic)
    moved = None
    if now != applied:
        moved = (
            f"the live projector applied more while the rebuild ran (offsets {applied} -> "
            f"{now}): stop it and run again for an exact comparison"
        )
    return Rebuild(
        ranges,
        progress.events,
        counts["repeats"],
        counts["undecodable"],
        counts["failed"],
        diffs,
        time.monotonic() - started,
        moved,
    )


def _dialect(live: Sink) -> Dialect:
    """The live sink's SQL dialect: its bookkeeping tables (the owners, the
    conversation_index) are read with SQL, which the memory sink does not answer."""
    dialect = getattr(live, "dialect", None)
    if not isinstance(dialect, Dialect):
        raise ReplayError(
            f"{live.description} answers no SQL: compare a rebuild with a DuckDB or PostgreSQL sink"
        )
    return dialect


def _owner(live: Sink, tables: dict[str, Table]) -> str:
    sql = f"SELECT group_id FROM {OWNERS_TABLE} WHERE table_name = {_dialect(live).param('text')}"
    owners: set[str]
    try:
        owners = {row[0] for name in tables for row in live.query(sql, [name])}
    except Exception:  # no bookkeeping tables: nothing was ever projected into it
        owners = set()
    if len(owners) != 1:
        found = ", ".join(sorted(owners)) or "none"
        raise ReplayError(
            f"{live.description} does not hold these projections under one consumer group "
            f"(owners: {found}): run `agentlog project run` into it first"
        )
    return owners.pop()


def _since(
    live: Sink, since_micros: int, applied: dict[int, int]
) -> tuple[dict[int, int], set[str]]:
    """Per partition, the first offset of the conversations active at or after the time,
    and those conversations (from the live conversation_index)."""
    d = _dialect(live)
    try:
        rows = live.query(
            f'SELECT t.conversation_id, t."partition", t.first_offset FROM '
            f"{quoted(INDEX_TABLE)} AS t WHERE t.last_time >= "
            f"{d.timestamp_from_micros(d.param('bigint'))}",
            [since_micros],
        )
    except Exception as exc:  # no index table: the driver's error says which
        raise ReplayError(
            f"--from needs the conversation_index in {live.description} to find where to "
            f"start: {str(exc).strip().splitlines()[0]}"
        ) from None
    starts: dict[int, int] = {}
    scope = set()
    for conversation_id, partition, first in rows:
        scope.add(conversation_id)
        starts[int(partition)] = min(int(first), starts.get(int(partition), int(first)))
    return {p: starts.get(p, stop) for p, stop in applied.items()}, scope


def _replay_partition(
    reader: PartitionReader,
    into: Sink,
    folder: Folder,
    span: tuple[int, int, int],
    scope: set[str] | None,
    batch_size: int,
    progress: Progress,
    counts: dict[str, int],
    on_progress: ProgressCallback | None,
) -> None:
    """Offsets [start, stop) of one partition into the sink, a transaction per batch;
    with a `scope`, only those conversations' events."""
    partition, start, stop = span
    stored: int | None = None
    messages: list[Message] = []

    def flush(next_offset: int) -> None:
        nonlocal stored
        events = []
        for message in messages:
            try:
                event = recorded_event(message)
            except DecodeError:  # the projector dead-lettered it: it changes nothing
                counts["undecodable"] += 1
                continue
            if scope is None or event.conversation_id in scope:
                events.append(event)
        ids = [e.event_id for e in events]
        before = into.applied_among(REBUILD_GROUP, ids) if ids else set()
        folded = fold_batch(folder, events, before, into.load)
        counts["repeats"] += len(events) - len(folded.applied) - folded.failed
        counts["failed"] += folded.failed
        with into.transaction(REBUILD_GROUP, reader.topic) as tx:
            tx.claim({partition: (stored, next_offset)})
            tx.mark_applied(folded.applied)
            for name, rows in folded.changed.items():
                tx.upsert(folder.tables[name], rows)
        progress.done += next_offset - (start if stored is None else stored)
        stored = next_offset
        progress.events += len(folded.applied)
        messages.clear()
        if on_progress is not None:
            on_progress(progress)

    for message in reader.read(partition, start, stop):
        messages.append(message)
        if len(messages) >= batch_size:
            flush(partition_offset(message)[1] + 1)
    if messages or stored != stop:
        flush(stop)


def _rows(sink: Sink, table: Table, scope: set[str] | None) -> dict[Key, Row]:
    # select(), the sink contract's read: every sink has it (a rebuild into memory: too),
    # and it gives the same row from each, so the two sides compare value for value.
    rows: dict[Key, Row] = {}
    for row in sink.select(table):
        if scope is not None and "conversation_id" in row and row["conversation_id"] not in scope:
            continue
        rows[tuple(row[k] for k in table.key)] = row
    return rows


def _compare(live: Sink, rebuilt: Sink, table: Table, scope: set[str] | None) -> TableDiff:
    ours, theirs = _rows(rebuilt, table, scope), _rows(live, table, scope)
    diff = TableDiff(table.name, len(ours.keys() | theirs.keys()))
    diff.only_live = sorted(theirs.keys() - ours.keys())
    diff.only_rebuilt = sorted(ours.keys() - theirs.keys())
    for key in sorted(ours.keys() & theirs.keys()):
        columns = [c for c in table.columns if ours[key][c] != theirs[key][c]]
        if columns:
            diff.differing.append((key, columns))
    return diff
