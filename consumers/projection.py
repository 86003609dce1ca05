"""What a projection is: tables of rows, and handlers that fold events into them.

    class OrderCount(Projection):
        name = "order_count"
        tables = (Table("orders", key=("conversation_id",), columns={"orders": "bigint"},
                        key_of=lambda e: (e.conversation_id,)),)

        @handles("tool_call_completed")
        def on_done(self, event, state):
            state.row("orders", (event.conversation_id,))["orders"] += 1

Contract: a handler changes state only through `state.row(...)` (rows are copies,
kept only if the handler returns) and is a pure function of the event and the rows,
so redelivery and replay give the same state, and a batch the runner folds again
(after a handler raised, or when it held an event applied before) gives the same
rows. Every row must belong to one
conversation (its key derives from the event's conversation), because the
conversation's partition is what one consumer owns at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from agentlog.errors import ConfigurationError
from agentlog.events import EVENT_TYPES

# The event handlers see is the core's (one conversion from a record, `agentlog.recorded`).
from agentlog.recorded import Position as Position
from agentlog.recorded import RecordedEvent as RecordedEvent

COLUMN_TYPES = ("text", "bigint", "double", "boolean", "timestamp", "text[]")
Key = tuple[str, ...]
Row = dict[str, Any]
Handler = TypeVar("Handler", bound=Callable[..., Any])


@dataclass(frozen=True)
class Table:
    """A state table: text key columns, typed value columns (`timestamp` values are UTC
    microseconds in handlers), and how to find the row an event touches (for prefetch)."""

    name: str
    key: Key
    columns: dict[str, str]
    key_of: Callable[[RecordedEvent], Key | None]
    defaults: dict[str, Any] = field(default_factory=dict)
    list_columns: tuple[str, ...] = field(init=False, repr=False, compare=False)
    # A new row before its key is set (copied for each: a fold makes many).
    _empty_row: Row = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lists = tuple(c for c, kind in self.columns.items() if kind == "text[]")
        object.__setattr__(self, "list_columns", lists)
        empty = {c: self.defaults.get(c, _ZERO.get(kind)) for c, kind in self.columns.items()}
        object.__setattr__(self, "_empty_row", empty)
        for column, kind in self.columns.items():
            if kind not in COLUMN_TYPES:
                raise ConfigurationError(f"{self.name}.{column}: unknown column type {kind!r}")
        missing = [k for k in self.key if self.columns.get(k) != "text"]
        if missing:
            raise ConfigurationError(f"{self.name}: key columns {missing} must be text columns")

    def new_row(self, key: Key) -> Row:
        row = dict(self._empty_row)
        for column, value in zip(self.key, key, strict=True):
            row[column] = value
        return self.detached(row)

    def detached(self, row: Row) -> Row:
        """`row` with its own copy of every list value, so changing one changes no other."""
        for column in self.list_columns:
            if row[column] is not None:
                row[column] = list(row[column])
        return row


_ZERO: dict[str, Any] = {"bigint": 0, "double": 0.0, "boolean": False, "text[]": []}


def handles(*event_types: str) -> Callable[[Handler], Handler]:
    """Mark a method as the handler of these event types."""
    unknown = [t for t in event_types if t not in EVENT_TYPES]
    if unknown:
        raise ConfigurationError(f"unknown event types {unknown}; known: {', '.join(EVENT_TYPES)}")

    def mark(method: Handler) -> Handler:
        method.__agentlog_handles__ = event_types  # type: ignore[attr-defined]
        return method

    return mark


class Projection:
    name: ClassVar[str]
    tables: ClassVar[tuple[Table, ...]]

    def __init__(self) -> None:
        self.handlers: dict[str, list[Callable[[RecordedEvent, State], None]]] = {}
        for attribute in dir(type(self)):
            method = getattr(self, attribute)
            for event_type in getattr(method, "__agentlog_handles__", ()):
                self.handlers.setdefault(event_type, []).append(method)


class State:
    """The rows handlers see and change. A row is copied from `base` (the stored rows)
    the first time it is touched, so `base` itself never changes and a fold that fails
    can be thrown away whole."""

    __slots__ = ("_tables", "_base", "_load", "changed")

    def __init__(
        self,
        tables: dict[str, Table],
        base: dict[str, dict[Key, Row | None]],
        load: Callable[[Table, Key], Row | None],
    ) -> None:
        self._tables = tables
        self._base = base
        self._load = load
        self.changed: dict[str, dict[Key, Row]] = {name: {} for name in tables}

    def row(self, table: str, key: Key) -> Row:
        """The row for `key` (a fresh one with defaults if none exists), to read and change."""
        changed = self.changed[table]
        row = changed.get(key)
        if row is None:
            base = self._base[table]
            if key in base:
                current = base[key]
            else:
                current = base[key] = self._load(self._tables[table], key)
            definition = self._tables[table]
            row = (
                definition.detached(dict(current))
                if current is not None
                else definition.new_row(key)
            )
            changed[key] = row
        return row


def all_tables(projections: Iterable[Projection]) -> dict[str, Table]:
    tables: dict[str, Table] = {}
    for projection in projections:
        for table in projection.tables:
            if table.name in tables:
                raise ConfigurationError(f"two projections define table {table.name}")
            tables[table.name] = table
    return tables
