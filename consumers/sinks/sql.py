"""SQL shared by the DuckDB and PostgreSQL sinks; each supplies its dialect."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any

from agentlog.consumers.projection import Key, RecordedEvent, Row, Table
from agentlog.consumers.sinks.base import (
    AppliedLog,
    Fenced,
    LastApplied,
    SentDeadLetter,
    SinkTransaction,
    Where,
    check_order,
)
from agentlog.errors import SinkError

OFFSETS_TABLE = "agentlog_offsets"
OWNERS_TABLE = "agentlog_table_owners"
APPLIED_TABLE = "agentlog_applied_events"
LOGS_TABLE = "agentlog_logs"
SENT_DEAD_LETTERS_TABLE = "agentlog_sent_dead_letters"


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
    part, offset = quoted("partition"), quoted("offset")
    return [
        f"CREATE TABLE IF NOT EXISTS {OFFSETS_TABLE} (group_id {text} NOT NULL, "
        f"topic {text} NOT NULL, {part} {bigint} NOT NULL, "
        f"next_offset {bigint} NOT NULL, updated_at {stamp}, "
        f"last_offset {bigint}, last_event_id {text}, "
        # where a group that did not start at the beginning started (NULL: it did)
        f"start_offset {bigint}, "
        f"PRIMARY KEY (group_id, topic, {part}))",
        # occurred_at: event time in UTC microseconds, what the dedup window counts in
        f"CREATE TABLE IF NOT EXISTS {APPLIED_TABLE} (group_id {text} NOT NULL, "
        f"event_id {text} NOT NULL, {part} {bigint}, {offset} {bigint}, "
        f"occurred_at {bigint}, PRIMARY KEY (group_id, event_id))",
        f"CREATE TABLE IF NOT EXISTS {OWNERS_TABLE} (table_name {text} PRIMARY KEY, "
        f"group_id {text} NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {LOGS_TABLE} (group_id {text} NOT NULL, "
        f"topic {text} NOT NULL, topic_id {text}, partitions {bigint} NOT NULL, "
        f"refused {text}, PRIMARY KEY (group_id, topic))",
        f"CREATE TABLE IF NOT EXISTS {SENT_DEAD_LETTERS_TABLE} (group_id {text} NOT NULL, "
        f"dead_letter_id {text} NOT NULL, topic {text} NOT NULL, {part} {bigint} NOT NULL, "
        f"{offset} {bigint} NOT NULL, PRIMARY KEY (group_id, dead_letter_id))",
    ]


# Columns added after sinks were first created: added to older sinks on prepare.
ADDED_COLUMNS = {
    OFFSETS_TABLE: {"last_offset": "bigint", "last_event_id": "text", "start_offset": "bigint"},
    APPLIED_TABLE: {"occurred_at": "bigint"},
}


def add_missing_columns(cursor: Any, dialect: Dialect) -> None:
    p = dialect.param("text")
    for table, columns in ADDED_COLUMNS.items():
        cursor.execute(
            "SELECT column_name FROM information_schema.columns "
            f"WHERE table_schema = current_schema() AND table_name = {p}",
            [table],
        )
        present = {row[0] for row in cursor.fetchall()}
        for column, kind in columns.items():
            if column not in present:
                cursor.execute(f"ALTER TABLE {table} ADD COLUMN {column} {dialect.types[kind]}")


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
                f"INSERT INTO {OFFSETS_TABLE} (group_id, topic, {part}, next_offset, updated_at) "
                f"SELECT {p()}, {p()}, s.p, s.n, {now} FROM {rows} "
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

    def _affected(self) -> int:
        """Rows the last INSERT, UPDATE or DELETE changed."""
        return int(self.cursor.rowcount)

    def mark_last(self, last: dict[int, LastApplied]) -> None:
        if not last:
            return
        p, part = self._p, quoted("partition")
        rows = self.dialect.rows_of([("p", "bigint"), ("o", "bigint"), ("e", "text")], "s")
        partitions = list(last)
        self.cursor.execute(
            f"UPDATE {OFFSETS_TABLE} SET last_offset = s.o, last_event_id = s.e FROM {rows} "
            f"WHERE {OFFSETS_TABLE}.group_id = {p()} AND {OFFSETS_TABLE}.topic = {p()} "
            f"AND {OFFSETS_TABLE}.{part} = s.p",
            [
                partitions,
                [last[q].offset for q in partitions],
                [last[q].event_id for q in partitions],
                self.group,
                self.topic,
            ],
        )

    def mark_start(self, starts: dict[int, int]) -> None:
        if not starts:
            return
        p, part = self._p, quoted("partition")
        rows = self.dialect.rows_of([("p", "bigint"), ("o", "bigint")], "s")
        partitions = list(starts)
        self.cursor.execute(
            f"UPDATE {OFFSETS_TABLE} SET start_offset = s.o FROM {rows} "
            f"WHERE {OFFSETS_TABLE}.group_id = {p()} AND {OFFSETS_TABLE}.topic = {p()} "
            f"AND {OFFSETS_TABLE}.{part} = s.p",
            [partitions, [starts[q] for q in partitions], self.group, self.topic],
        )

    def started_at(self) -> dict[int, int]:
        p = self._p
        self.cursor.execute(
            f"SELECT {quoted('partition')}, start_offset FROM {OFFSETS_TABLE} "
            f"WHERE group_id = {p()} AND topic = {p()} AND start_offset IS NOT NULL",
            [self.group, self.topic],
        )
        return {int(q): int(o) for q, o in self.cursor.fetchall()}

    def stored_log(self) -> AppliedLog | None:
        p = self._p
        self.cursor.execute(
            f"SELECT topic_id, partitions, refused FROM {LOGS_TABLE} "
            f"WHERE group_id = {p()} AND topic = {p()}",
            [self.group, self.topic],
        )
        found = self.cursor.fetchall()
        if not found:
            return None
        topic_id, partitions, refused = found[0]
        return AppliedLog(topic_id, int(partitions), refused)

    def record_log(self, log: AppliedLog) -> AppliedLog:
        p = self._p
        self.cursor.execute(
            f"INSERT INTO {LOGS_TABLE} (group_id, topic, topic_id, partitions, refused) "
            f"VALUES ({p()}, {p()}, {p()}, {p('bigint')}, {p()}) "
            "ON CONFLICT DO NOTHING",
            [self.group, self.topic, log.topic_id, log.partitions, log.refused],
        )
        stored = self.stored_log()
        assert stored is not None
        return stored

    def refuse_log(self, reason: str) -> None:
        p = self._p
        self.cursor.execute(
            f"UPDATE {LOGS_TABLE} SET refused = {p()} "
            f"WHERE group_id = {p()} AND topic = {p()} AND refused IS NULL",
            [reason, self.group, self.topic],
        )

    def last_applied(self) -> dict[int, LastApplied]:
        p = self._p
        self.cursor.execute(
            f"SELECT {quoted('partition')}, last_offset, last_event_id FROM {OFFSETS_TABLE} "
            f"WHERE group_id = {p()} AND topic = {p()} AND last_offset IS NOT NULL",
            [self.group, self.topic],
        )
        return {int(q): LastApplied(int(o), e) for q, o, e in self.cursor.fetchall()}

    def mark_applied(self, events: list[RecordedEvent]) -> int:
        if not events:
            return 0
        columns = [("e", "text"), ("p", "bigint"), ("o", "bigint"), ("t", "bigint")]
        rows = self.dialect.rows_of(columns, "s")
        self.cursor.execute(
            f"INSERT INTO {APPLIED_TABLE} (group_id, event_id, {quoted('partition')}, "
            f"{quoted('offset')}, occurred_at) SELECT {self._p()}, s.e, s.p, s.o, s.t FROM {rows} "
            "ON CONFLICT DO NOTHING",
            [
                self.group,
                [e.event_id for e in events],
                [e.partition for e in events],
                [e.offset for e in events],
                [e.occurred_at for e in events],
            ],
        )
        return self._affected()

    def forget_applied_before(self, horizons: dict[int, int]) -> int:
        # A statement per partition: plain comparisons let DuckDB skip whole row groups
        # by their min/max (a join with the horizons would scan every row).
        p, forgotten = self._p, 0
        for partition, horizon in horizons.items():
            self.cursor.execute(
                f"DELETE FROM {APPLIED_TABLE} WHERE group_id = {p()} "
                f"AND {quoted('partition')} = {p('bigint')} AND occurred_at < {p('bigint')}",
                [self.group, partition, horizon],
            )
            forgotten += self._affected()
        return forgotten

    def sent_dead_letters(self, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        rows = self.dialect.rows_of([("i", "text")], "s")
        self.cursor.execute(
            f"SELECT d.dead_letter_id FROM {SENT_DEAD_LETTERS_TABLE} AS d "
            f"JOIN {rows} ON d.dead_letter_id = s.i WHERE d.group_id = {self._p()}",
            [ids, self.group],
        )
        return {row[0] for row in self.cursor.fetchall()}

    def record_sent_dead_letters(self, sent: list[SentDeadLetter]) -> None:
        if not sent:
            return
        p = self._p
        rows = self.dialect.rows_of([("i", "text"), ("p", "bigint"), ("o", "bigint")], "s")
        self.cursor.execute(
            f"INSERT INTO {SENT_DEAD_LETTERS_TABLE} (group_id, dead_letter_id, topic, "
            f"{quoted('partition')}, {quoted('offset')}) SELECT {p()}, s.i, {p()}, s.p, s.o "
            f"FROM {rows} ON CONFLICT DO NOTHING",
            [
                self.group,
                self.topic,
                [d.id for d in sent],
                [d.partition for d in sent],
                [d.offset for d in sent],
            ],
        )

    def forget_sent_dead_letters(self) -> None:
        p, part, d, o = self._p, quoted("partition"), SENT_DEAD_LETTERS_TABLE, OFFSETS_TABLE
        self.cursor.execute(
            f"DELETE FROM {d} WHERE group_id = {p()} AND topic = {p()} AND EXISTS ("
            f"SELECT 1 FROM {o} WHERE {o}.group_id = {d}.group_id AND {o}.topic = {d}.topic "
            f"AND {o}.{part} = {d}.{part} AND {d}.{quoted('offset')} < {o}.next_offset)",
            [self.group, self.topic],
        )

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
    add_missing_columns(cursor, dialect)
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
