"""Memory sink: the sink contract kept in plain Python objects, in this process only.

As eventsourcing has its POPO recorders: for tests, replay and trying a projection
out without a database. It keeps the contract the database sinks keep
(`agentlog.testing.SinkContract` runs on all of them): offsets claimed with a
compare-and-set, event ids applied once, nothing visible before commit, committed
reads beside a running transaction.

`memory:` is a store of its own; `memory:NAME` is the store of that name, shared by
every sink opened with it in this process until the process exits (a runner and a
reader can meet there; nothing survives the process).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from operator import itemgetter

from agentlog.consumers.projection import Key, RecordedEvent, Row, Table
from agentlog.consumers.sinks.base import (
    AppliedLog,
    Fenced,
    LastApplied,
    SentDeadLetter,
    Sink,
    SinkTransaction,
    Where,
    check_order,
)
from agentlog.errors import ConfigurationError, SinkError


class _Store:
    """What one memory sink holds, committed. `lock` guards every read and the moment
    a transaction's changes land; `writing` lets one transaction run at a time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.writing = threading.Lock()
        self.rows: dict[str, dict[Key, Row]] = {}
        self.owners: dict[str, str] = {}
        self.offsets: dict[tuple[str, str], dict[int, int]] = {}
        # group -> applied event id -> (partition, event time)
        self.applied: dict[str, dict[str, tuple[int, int]]] = {}
        self.last: dict[tuple[str, str], dict[int, LastApplied]] = {}
        self.starts: dict[tuple[str, str], dict[int, int]] = {}
        self.logs: dict[tuple[str, str], AppliedLog] = {}
        # (group, topic) -> sent dead letter id -> its origin
        self.sent: dict[tuple[str, str], dict[str, SentDeadLetter]] = {}


_named: dict[str, _Store] = {}
_named_lock = threading.Lock()


def _copy(table: Table, row: Row) -> Row:
    return table.detached(dict(row))


class MemoryTransaction(SinkTransaction):
    """Changes are staged here and land in the store at once on commit."""

    def __init__(self, store: _Store, description: str, group: str, topic: str) -> None:
        self._store = store
        self._description = description
        self._group = group
        self._topic = topic
        self._rows: dict[str, dict[Key, Row]] = {}
        self._offsets: dict[int, int] = {}
        self._applied: dict[str, tuple[int, int]] = {}
        self._last: dict[int, LastApplied] = {}
        self._starts: dict[int, int] = {}
        self._forgotten: set[str] = set()
        self._forget_sent = False

    def claim(self, moves: dict[int, tuple[int | None, int]]) -> None:
        with self._store.lock:
            stored = dict(self._store.offsets.get((self._group, self._topic), {}))
        stored.update(self._offsets)
        lost = sorted(p for p, (expected, _) in moves.items() if stored.get(p) != expected)
        if lost:
            raise Fenced(
                f"partitions {lost} of {self._topic} were moved on by another consumer of group "
                f"{self._group} since this one read their offsets"
            )
        for partition, (_, after) in moves.items():
            self._offsets[partition] = after

    def mark_applied(self, events: list[RecordedEvent]) -> int:
        with self._store.lock:
            before = self._store.applied.get(self._group, {})
            new = 0
            for event in events:
                if event.event_id not in before and event.event_id not in self._applied:
                    self._applied[event.event_id] = (event.partition, event.occurred_at)
                    new += 1
        return new

    def mark_last(self, last: dict[int, LastApplied]) -> None:
        self._last.update(last)

    def mark_start(self, starts: dict[int, int]) -> None:
        self._starts.update(starts)

    def stored_log(self) -> AppliedLog | None:
        with self._store.lock:
            return self._store.logs.get((self._group, self._topic))

    def forget_applied_before(self, horizons: dict[int, int]) -> int:
        with self._store.lock:
            applied = dict(self._store.applied.get(self._group, {}))
        applied.update(self._applied)
        due = {
            event_id
            for event_id, (partition, occurred_at) in applied.items()
            if partition in horizons and occurred_at < horizons[partition]
        } - self._forgotten
        self._forgotten |= due
        return len(due)

    def forget_sent_dead_letters(self) -> None:
        self._forget_sent = True

    def load(self, table: Table, keys: list[Key]) -> dict[Key, Row]:
        staged = self._rows.get(table.name, {})
        with self._store.lock:
            stored = _rows_of(self._store, self._description, table)
            found = {}
            for key in keys:
                row = staged.get(key) or stored.get(key)
                if row is not None:
                    found[key] = _copy(table, row)
        return found

    def upsert(self, table: Table, rows: list[Row]) -> None:
        with self._store.lock:
            _rows_of(self._store, self._description, table)
        staged = self._rows.setdefault(table.name, {})
        for row in rows:
            if row.keys() != table.columns.keys():
                raise SinkError(
                    f"a row for {table.name} must have exactly its columns "
                    f"{list(table.columns)}, not {list(row)}"
                )
            staged[tuple(row[k] for k in table.key)] = _copy(table, row)

    def commit(self) -> None:
        store = self._store
        with store.lock:
            for name, rows in self._rows.items():
                store.rows[name].update(rows)
            if self._offsets:
                store.offsets.setdefault((self._group, self._topic), {}).update(self._offsets)
            if self._applied:
                store.applied.setdefault(self._group, {}).update(self._applied)
            key = (self._group, self._topic)
            if self._last:
                store.last.setdefault(key, {}).update(self._last)
            if self._starts:
                store.starts.setdefault(key, {}).update(self._starts)
            if self._forgotten:
                applied = store.applied.get(self._group, {})
                for event_id in self._forgotten:
                    applied.pop(event_id, None)
            if self._forget_sent:
                offsets = store.offsets.get(key, {})
                sent = store.sent.get(key, {})
                for letter_id in [
                    i for i, d in sent.items() if d.offset < offsets.get(d.partition, -1)
                ]:
                    del sent[letter_id]


def _rows_of(store: _Store, description: str, table: Table) -> dict[Key, Row]:
    rows = store.rows.get(table.name)
    if rows is None:
        raise SinkError(f"{description} has no {table.name} table yet: run `agentlog project run`")
    return rows


class MemorySink(Sink):
    def __init__(self, name: str = "", *, read_only: bool = False) -> None:
        self.description = f"memory:{name}"
        self.read_only = read_only
        with _named_lock:
            store = _named.get(name) if name else None
            if store is None:
                if read_only:
                    raise SinkError(
                        f"no projections in {self.description}: a memory sink lives only in "
                        "the process that filled it"
                    )
                store = _Store()
                if name:
                    _named[name] = store
        self._store = store

    def _writable(self) -> None:
        if self.read_only:
            raise SinkError(f"{self.description} was opened read-only")

    def prepare(self, tables: Iterable[Table], group: str) -> None:
        self._writable()
        tables = list(tables)
        with self._store.lock:
            for table in tables:
                owner = self._store.owners.get(table.name, group)
                if owner != group:
                    raise SinkError(
                        f"table {table.name} in this sink is maintained by consumer group "
                        f"{owner!r}; run with --group {owner} or project into another sink"
                    )
            for table in tables:
                self._store.owners.setdefault(table.name, group)
                self._store.rows.setdefault(table.name, {})

    def stored_offsets(self, group: str, topic: str) -> dict[int, int]:
        with self._store.lock:
            return dict(self._store.offsets.get((group, topic), {}))

    def last_applied(self, group: str, topic: str) -> dict[int, LastApplied]:
        with self._store.lock:
            return dict(self._store.last.get((group, topic), {}))

    def started_at(self, group: str, topic: str) -> dict[int, int]:
        with self._store.lock:
            return dict(self._store.starts.get((group, topic), {}))

    def stored_log(self, group: str, topic: str) -> AppliedLog | None:
        with self._store.lock:
            return self._store.logs.get((group, topic))

    def record_log(self, group: str, topic: str, log: AppliedLog) -> AppliedLog:
        with self._store.lock:
            return self._store.logs.setdefault((group, topic), log)

    def refuse_log(self, group: str, topic: str, reason: str) -> None:
        with self._store.lock:
            log = self._store.logs.get((group, topic))
            if log is not None and log.refused is None:
                self._store.logs[group, topic] = replace(log, refused=reason)

    def sent_dead_letters(self, group: str, ids: list[str]) -> set[str]:
        with self._store.lock:
            sent = [d for (g, _), by_id in self._store.sent.items() if g == group for d in by_id]
            return set(ids) & set(sent)

    def record_sent_dead_letters(self, group: str, topic: str, sent: list[SentDeadLetter]) -> None:
        with self._store.lock:
            self._store.sent.setdefault((group, topic), {}).update({d.id: d for d in sent})

    def load(self, table: Table, keys: list[Key]) -> dict[Key, Row]:
        with self._store.lock:
            stored = _rows_of(self._store, self.description, table)
            return {k: _copy(table, stored[k]) for k in keys if k in stored}

    def applied_among(self, group: str, event_ids: list[str]) -> set[str]:
        with self._store.lock:
            applied = self._store.applied.get(group, {})
            return {e for e in event_ids if e in applied}

    @contextmanager
    def transaction(self, group: str, topic: str) -> Iterator[MemoryTransaction]:
        self._writable()
        with self._store.writing:
            transaction = MemoryTransaction(self._store, self.description, group, topic)
            yield transaction  # an exception here discards what was staged
            transaction.commit()

    def select(
        self,
        table: Table,
        where: Sequence[Where] = (),
        *,
        order_by: Sequence[str] = (),
        limit: int | None = None,
    ) -> list[Row]:
        for condition in where:
            condition.check(table)
        order = check_order(table, order_by)
        with self._store.lock:
            stored = _rows_of(self._store, self.description, table)
            rows = [r for r in stored.values() if all(_meets(r, w) for w in where)]
            for column, descending in reversed(order):  # a stable sort per column, last first
                present = [r for r in rows if r[column] is not None]
                present.sort(key=itemgetter(column), reverse=descending)
                rows = present + [r for r in rows if r[column] is None]
            return [_copy(table, r) for r in rows[:limit]]

    def close(self) -> None:
        pass


def _meets(row: Row, where: Where) -> bool:
    value = row[where.column]
    if where.op == "has":
        return value is not None and where.value in value
    if value is None:  # as in SQL: an empty value meets no comparison
        return False
    if where.op == "=":
        return bool(value == where.value)
    if where.op == ">=":
        return bool(value >= where.value)
    if where.op == "<":
        return bool(value < where.value)
    raise ConfigurationError(f"unknown operator {where.op!r}")
