"""Where projections keep their state, and the contract every sink keeps.

A sink stores, in one transaction per batch, the projected rows *and* the offsets
they were projected up to (per consumer group, topic and partition), plus the ids of
the events applied. That transaction is what makes effects exactly-once:

- `claim` moves the partitions' stored offsets from the one this consumer started from
  to the new one, or raises `Fenced` if another consumer moved it meanwhile (a
  rebalance, a zombie): the whole batch then rolls back and the consumer re-seeks.
- `mark_applied` records event ids (with their event time) and counts those never
  applied before: an event redelivered, or produced twice by an application-level
  retry, applies once; `forget_applied_before` drops ids older than the dedup window.
- `mark_last` records the event id at the last offset applied in each partition, and
  the sink records which log (topic id, partition count) the offsets belong to
  (`record_log`): offsets are only meaningful in the log they were read from.
- `mark_start` records where a group that did not start at the beginning of the log
  started (`--from latest|TIME`), in the transaction that claims those offsets first:
  the state holds nothing from before them, and `started_at` says so to readers.
- `load` and `upsert` read and write rows; nothing is visible until commit.

Outside a transaction, `load`, `applied_among` and the bookkeeping reads see what is
committed, on a connection of their own: the runner calls them while a transaction of
the same sink runs on its writer thread. `record_sent_dead_letters` commits at once,
beside that transaction, so that dead letters acknowledged by Kafka stay known even
if the batch that sent them rolls back.

`agentlog.testing.SinkContract` is this contract as a test suite: the memory, DuckDB
and PostgreSQL sinks pass it, and so must any other.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from agentlog.consumers.projection import Key, RecordedEvent, Row, Table
from agentlog.errors import ConfigurationError, SinkError
from agentlog.errors import Fenced as Fenced  # re-exported: it was defined here before

OPERATORS = ("=", ">=", "<", "has")


@dataclass(frozen=True)
class Where:
    """A condition on one column of `select`: `=`, `>=` and `<` compare a value (a
    timestamp as UTC microseconds), `has` asks whether a `text[]` column holds one."""

    column: str
    op: str
    value: Any

    def check(self, table: Table) -> None:
        kind = table.columns.get(self.column)
        if kind is None:
            raise ConfigurationError(f"{table.name} has no column {self.column!r}")
        if self.op not in OPERATORS:
            raise ConfigurationError(f"unknown operator {self.op!r}; use one of {OPERATORS}")
        if self.value is None:
            raise ConfigurationError(f"no value to compare {table.name}.{self.column} with")
        if kind == "text[]" and self.op != "has":
            raise ConfigurationError(
                f"{table.name}.{self.column} is a list: ask whether it `has` a value"
            )
        if self.op == "has" and kind != "text[]":
            raise ConfigurationError(
                f"{table.name}.{self.column} is {kind}, not a list: `has` is for text[] columns"
            )


def check_order(table: Table, order_by: Sequence[str]) -> list[tuple[str, bool]]:
    """`order_by` ("column", or "-column" for descending) as (column, descending)."""
    order = []
    for item in order_by:
        column = item.removeprefix("-")
        if table.columns.get(column) in (None, "text[]"):
            raise ConfigurationError(f"cannot order {table.name} by {item!r}")
        order.append((column, item.startswith("-")))
    return order


@dataclass(frozen=True)
class AppliedLog:
    """The log a group's offsets in a sink belong to."""

    topic_id: str | None  # None: the broker names no topic ids
    partitions: int
    # Why a member refused to go on applying this log (the partition count changed);
    # once set, every member of the group refuses it.
    refused: str | None = None


@dataclass(frozen=True)
class LastApplied:
    """The record applied last in a partition: reading the log at `offset` must find
    the same event id, or the log is not the one the sink was built from."""

    offset: int
    event_id: str


@dataclass(frozen=True)
class SentDeadLetter:
    """A dead letter Kafka acknowledged, by its deterministic id and origin."""

    id: str
    partition: int
    offset: int


class SinkTransaction(ABC):
    @abstractmethod
    def claim(self, moves: dict[int, tuple[int | None, int]]) -> None:
        """For each partition: (expected, next). Store `next` as the partition's offset if
        the stored one is still `expected` (None: nothing stored yet); raise Fenced, and
        store nothing, if any of them moved."""

    @abstractmethod
    def mark_last(self, last: dict[int, LastApplied]) -> None:
        """Record the last applied record of partitions this transaction claimed."""

    @abstractmethod
    def mark_start(self, starts: dict[int, int]) -> None:
        """Record the first offset applied in partitions this transaction claimed first:
        the group started there, not at the beginning of the log."""

    @abstractmethod
    def stored_log(self) -> AppliedLog | None:
        """The log of this transaction's group and topic, as this transaction sees it."""

    @abstractmethod
    def mark_applied(self, events: list[RecordedEvent]) -> int:
        """Record the events (distinct ids, with their event time) as applied; return how
        many of them were not applied before."""

    @abstractmethod
    def forget_applied_before(self, horizons: dict[int, int]) -> int:
        """For each partition, forget the group's applied event ids from it whose event
        time (UTC microseconds) is before the partition's horizon; return how many were
        forgotten."""

    @abstractmethod
    def forget_sent_dead_letters(self) -> None:
        """Forget sent dead letters whose origin offset is below the partition's stored
        offset (their batch committed: they cannot be sent again)."""

    @abstractmethod
    def load(self, table: Table, keys: list[Key]) -> dict[Key, Row]:
        """The stored rows among `keys` (timestamps as UTC microseconds)."""

    @abstractmethod
    def upsert(self, table: Table, rows: list[Row]) -> None:
        """Insert or replace rows by key."""


class Sink(ABC):
    """One state store, used by one runner: its transactions run one at a time (on any
    thread); its committed reads and the log bookkeeping (`record_log`, `refuse_log`)
    may run beside them on one other thread; `sent_dead_letters` and
    `record_sent_dead_letters` run on the transactions' thread, beside the transaction
    in flight."""

    description: str
    # Set when reads see an earlier state than the latest commit (a DuckDB snapshot).
    reading_note: str | None = None

    @abstractmethod
    def prepare(self, tables: Iterable[Table], group: str) -> None:
        """Create the tables and the bookkeeping tables if they do not exist, and check
        that no other consumer group maintains them."""

    @abstractmethod
    def stored_offsets(self, group: str, topic: str) -> dict[int, int]:
        """Next offset to apply per partition, as last committed by the group."""

    @abstractmethod
    def last_applied(self, group: str, topic: str) -> dict[int, LastApplied]:
        """The last applied record per partition (partitions that recorded one)."""

    @abstractmethod
    def started_at(self, group: str, topic: str) -> dict[int, int]:
        """Where the group started per partition, for partitions it recorded a start for
        (`mark_start`); none recorded: it applied each partition from the beginning."""

    @abstractmethod
    def stored_log(self, group: str, topic: str) -> AppliedLog | None:
        """The log the group's offsets belong to; None before it was recorded."""

    @abstractmethod
    def record_log(self, group: str, topic: str, log: AppliedLog) -> AppliedLog:
        """Record `log` as the group's log unless one is recorded; return the recorded
        one (of whichever member came first)."""

    @abstractmethod
    def refuse_log(self, group: str, topic: str, reason: str) -> None:
        """Mark the group's log refused (keeping the first reason given)."""

    @abstractmethod
    def sent_dead_letters(self, group: str, ids: list[str]) -> set[str]:
        """Those of `ids` recorded as sent by `group` (committed)."""

    @abstractmethod
    def record_sent_dead_letters(self, group: str, topic: str, sent: list[SentDeadLetter]) -> None:
        """Record dead letters as sent, committed at once (not in the transaction in
        flight, which may still roll back)."""

    @abstractmethod
    def load(self, table: Table, keys: list[Key]) -> dict[Key, Row]:
        """The committed rows among `keys`."""

    @abstractmethod
    def applied_among(self, group: str, event_ids: list[str]) -> set[str]:
        """Those of `event_ids` that `group` has applied (committed)."""

    @abstractmethod
    @contextmanager
    def transaction(self, group: str, topic: str) -> Iterator[SinkTransaction]:
        """Commit on clean exit, roll back on any exception."""

    @abstractmethod
    def select(
        self,
        table: Table,
        where: Sequence[Where] = (),
        *,
        order_by: Sequence[str] = (),
        limit: int | None = None,
    ) -> list[Row]:
        """The committed rows of `table` that meet every condition, ordered by the
        columns of `order_by` ("-column": descending; empty values last either way),
        at most `limit` of them. Raises SinkError if the table was never prepared."""

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a read-only query in the sink's SQL dialect, for sinks that have one."""
        raise SinkError(f"{self.description} answers no SQL; read it with select()")

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
