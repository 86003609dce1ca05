"""SQL shared by the DuckDB and PostgreSQL sinks; each supplies its dialect."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any

from agentlog.consumers.projection import Key, RecordedEvent, Row, Table
from agentlog.consumers.sinks.base import Fenced, SinkTransaction, Where, check_order
from agentlog.errors import SinkError

OFFSETS_TABLE = "agentlog_offsets"
OWNERS_TABLE = "agentlog_table_owners"
APPLIED_TABLE = "agentlog_applied_events"


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Dialect:
    """How one SQL engine spells types, parameters, arrays and timestamps."""

    types: dict[str, str]
    now: str

    @abstractmethod
    def param(self, kind: str) -> str:
        """A placeholder for one scalar parameter of a column type."""

    @abstractmethod
    def timestamp_from_micros(self, expression: str) -> str: ...

    @abstractmethod
    def micros_from_timestamp(self, expression: str) -> str: ...

    @abstractmethod
    def rows_of(self, columns: list[tuple[str, str]], alias: str) -> str:
        """A FROM item of rows passed as one list parameter per (name, type) column."""

    @abstractmethod
    def array_contains(self, column: str) -> str:
        """A condition: the text[] column holds the value of one parameter."""


def bookkeeping_ddl(dialect: Dialect) -> list[str]:
    text, bigint = dialect.types["text"], dialect.types["bigint"]
    stamp = dialect.types["timestamp"]
    return [
        f"CREATE TABLE IF NOT EXISTS {OFFSETS_TABLE} (group_id {text} NOT NULL, "
        f"topic {text} NOT NULL, {quoted('partition')} {bigint} NOT NULL, "
        f"next_offset {bigint} NOT NULL, updated_at {stamp}, "
        f"PRIMARY KEY (group_id, topic, {quoted('partition')}))",
        f"CREATE TABLE IF NOT EXISTS {APPLIED_TABLE} (group_id {text} NOT NULL, "
        f"event_id {text} NOT NULL, {quoted('partition')} {bigint}, {quoted('offset')} {bigint}, "
        f"PRIMARY KEY (group_id, event_id))",
        f"CREATE TABLE IF NOT EXISTS {OWNERS_TABLE} (table_name {text} PRIMARY KEY, "
        f"group_id {text} NOT NULL)",
    ]


def table_ddl(dialect: Dialect, table: Table) -> str:
    columns = ", ".join(f"{quoted(c)} {dialect.types[kind]}" for c, kind in table.columns.items())
    key = ", ".join(quoted(k) for k in table.key)
    return f"CREATE TABLE IF NOT EXISTS {quoted(table.name)} ({columns}, PRIMARY KEY ({key}))"


def select_columns(dialect: Dialect, table: Table, alias: str = "t") -> str:
    return ", ".join(
        dialect.micros_from_timestamp(f"{alias}.{quoted(c)}")
        if kind == "timestamp"
        else f"{alias}.{quoted(c)}"
        for c, kind in table.columns.items()
    )


def select_statement(
    dialect: Dialect,
    table: Table,
    where: Sequence[Where],
    order_by: Sequence[str],
    limit: int | None,
) -> tuple[str, list[Any]]:
    """`Sink.select` in SQL: the statement and its parameters."""
    conditions, params = [], []
    for condition in where:
        condition.check(table)
        column = f"t.{quoted(condition.column)}"
        kind = table.columns[condition.column]
        if condition.op == "has":
            conditions.append(dialect.array_contains(column))
        elif kind == "timestamp":
            value = dialect.timestamp_from_micros(dialect.param("bigint"))
            conditions.append(f"{column} {condition.op} {value}")
        else:
            conditions.append(f"{column} {condition.op} {dialect.param(kind)}")
        params.append(condition.value)
    sql = f"SELECT {select_columns(dialect, table)} FROM {quoted(table.name)} AS t"
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    order = check_order(table, order_by)
    if order:
        sql += " ORDER BY " + ", ".join(
            f"t.{quoted(c)} {'DESC' if descending else 'ASC'} NULLS LAST" for c, descending in order
        )
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return sql, params


def row_of(table: Table, values: Sequence[Any]) -> Row:
    """A row from the values of `select_columns`, an empty text[] as []."""
    row = dict(zip(table.columns, values, strict=True))
    for column in table.list_columns:
        if row[column] is None:
            row[column] = []
    return row


def upsert_assignments(table: Table) -> str:
    values = [c for c in table.columns if c not in table.key]
    key = ", ".join(quoted(k) for k in table.key)
    if not values:
        return f"ON CONFLICT ({key}) DO NOTHING"
    sets = ", ".join(f"{quoted(c)} = excluded.{quoted(c)}" for c in values)
    return f"ON CONFLICT ({key}) DO UPDATE SET {sets}"


class SqlTransaction(SinkTransaction):
    """Runs the contract's statements on a DB-API cursor of either engine."""

    def __init__(self, cursor: Any, dialect: Dialect, group: str, topic: str) -> None:
        self.cursor = cursor
        self.dialect = dialect
        self.group = group
        self.topic = topic

    def _p(self, kind: str = "text") -> str:
        return self.dialect.param(kind)

    def claim(self, moves: dict[int, tuple[int | None, int]]) -> None:
        p, now, part = self._p, self.dialect.now, quoted("partition")
        claimed: set[int] = set()
        first = [q for q, (expected, _) in moves.items() if expected is None]
        if first:
            rows = self.dialect.rows_of([("p", "bigint"), ("n", "bigint")], "s")
            self.cursor.execute(
                f"INSERT INTO {OFFSETS_TABLE} SELECT {p()}, {p()}, s.p, s.n, {now} FROM {rows} "
                f"ON CONFLICT DO NOTHING RETURNING {part}",
                [self.group, self.topic, first, [moves[q][1] for q in first]],
            )
            claimed.update(int(r[0]) for r in self.cursor.fetchall())
        later = [q for q, (expected, _) in moves.items() if expected is not None]
        if later:
            rows = self.dialect.rows_of([("p", "bigint"), ("e", "bigint"), ("n", "bigint")], "s")
            self.cursor.execute(
                f"UPDATE {OFFSETS_TABLE} SET next_offset = s.n, updated_at = {now} FROM {rows} "
                f"WHERE {OFFSETS_TABLE}.group_id = {p()} AND {OFFSETS_TABLE}.topic = {p()} "
                f"AND {OFFSETS_TABLE}.{part} = s.p AND {OFFSETS_TABLE}.next_offset = s.e "
                f"RETURNING {OFFSETS_TABLE}.{part}",
                [
                    later,
                    [moves[q][0] for q in later],
                    [moves[q][1] for q in later],
                    self.group,
                    self.topic,
                ],
            )
            claimed.update(int(r[0]) for r in self.cursor.fetchall())
        lost = sorted(set(moves) - claimed)
        if lost:
            raise Fenced(
                f"partitions {lost} of {self.topic} were moved on by another consumer of group "
                f"{self.group} since this one read their offsets"
            )

    def mark_applied(self, events: list[RecordedEvent]) -> int:
        if not events:
            return 0
        rows = self.dialect.rows_of([("e", "text"), ("p", "bigint"), ("o", "bigint")], "s")
        self.cursor.execute(
            f"INSERT INTO {APPLIED_TABLE} SELECT {self._p()}, s.e, s.p, s.o FROM {rows} "
            "ON CONFLICT DO NOTHING",
            [
                self.group,
                [e.event_id for e in events],
                [e.partition for e in events],
                [e.offset for e in events],
            ],
        )
        return int(self.cursor.rowcount)

    def applied_among(self, event_ids: list[str]) -> set[str]:
        if not event_ids:
            return set()
        rows = self.dialect.rows_of([("e", "text")], "s")
        self.cursor.execute(
            f"SELECT a.event_id FROM {APPLIED_TABLE} AS a JOIN {rows} ON a.event_id = s.e "
            f"WHERE a.group_id = {self._p()}",
            [event_ids, self.group],
        )
        return {row[0] for row in self.cursor.fetchall()}

    def load(self, table: Table, keys: list[Key]) -> dict[Key, Row]:
        if not keys:
            return {}
        columns = list(table.columns)
        key_lists = [[key[i] for key in keys] for i in range(len(table.key))]
        using = ", ".join(quoted(k) for k in table.key)
        self.cursor.execute(
            f"SELECT {select_columns(self.dialect, table)} FROM {quoted(table.name)} AS t "
            f"JOIN {self.dialect.rows_of([(k, 'text') for k in table.key], 'keys')} "
            f"USING ({using})",
            key_lists,
        )
        found = {}
        for values in self.cursor.fetchall():
            row = dict(zip(columns, values, strict=True))
            if "text[]" in table.columns.values():
                for c, kind in table.columns.items():
                    if kind == "text[]" and row[c] is None:
                        row[c] = []
            found[tuple(row[k] for k in table.key)] = row
        return found

    @abstractmethod
    def upsert(self, table: Table, rows: list[Row]) -> None: ...


def create_all(cursor: Any, dialect: Dialect, tables: Iterable[Table], group: str) -> None:
    """Create what is missing and claim the tables for `group`: two groups folding the
    same events into one table would apply every event twice."""
    for statement in bookkeeping_ddl(dialect):
        cursor.execute(statement)
    p = dialect.param("text")
    for table in tables:
        cursor.execute(table_ddl(dialect, table))
        cursor.execute(
            f"INSERT INTO {OWNERS_TABLE} VALUES ({p}, {p}) ON CONFLICT DO NOTHING",
            [table.name, group],
        )
        cursor.execute(f"SELECT group_id FROM {OWNERS_TABLE} WHERE table_name = {p}", [table.name])
        owner = cursor.fetchall()[0][0]
        if owner != group:
            raise SinkError(
                f"table {table.name} in this sink is maintained by consumer group {owner!r}; "
                f"run with --group {owner} or project into another sink"
            )
