"""Where projections keep their state, and the contract every sink keeps.

A sink stores, in one transaction per batch, the projected rows *and* the offsets
they were projected up to (per consumer group, topic and partition), plus the ids of
the events applied. That transaction is what makes effects exactly-once:

- `claim` moves the partitions' stored offsets from the one this consumer started from
  to the new one, or raises `Fenced` if another consumer moved it meanwhile (a
  rebalance, a zombie): the whole batch then rolls back and the consumer re-seeks.
- `mark_applied` records event ids and counts those never applied before: an event
  redelivered, or produced twice by an application-level retry, applies once.
- `load` and `upsert` read and write rows; nothing is visible until commit.

Outside a transaction, `load` and `applied_among` read what is committed, on a
connection of their own: the runner calls them while a transaction of the same sink
runs on its writer thread.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from agentlog.consumers.projection import Key, RecordedEvent, Row, Table
from agentlog.errors import Fenced as Fenced  # re-exported: it was defined here before

if TYPE_CHECKING:
    from agentlog.consumers.sinks.sql import Dialect


class SinkTransaction(ABC):
    @abstractmethod
    def claim(self, moves: dict[int, tuple[int | None, int]]) -> None:
        """For each partition: (expected, next). Store `next` as the partition's offset if
        the stored one is still `expected` (None: nothing stored yet); raise Fenced, and
        store nothing, if any of them moved."""

    @abstractmethod
    def mark_applied(self, events: list[RecordedEvent]) -> int:
        """Record the events (distinct ids) as applied; return how many of them were not
        applied before."""

    @abstractmethod
    def load(self, table: Table, keys: list[Key]) -> dict[Key, Row]:
        """The stored rows among `keys` (timestamps as UTC microseconds)."""

    @abstractmethod
    def upsert(self, table: Table, rows: list[Row]) -> None:
        """Insert or replace rows by key."""


class Sink(ABC):
    """One state store, used by one runner: its transactions run one at a time (on any
    thread), and its committed reads may run beside them on one other thread."""

    description: str
    dialect: Dialect
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
    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a read-only query in the sink's SQL dialect."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
