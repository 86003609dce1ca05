"""PostgreSQL sink: many projector processes of one group share it safely."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from agentlog.consumers.projection import Key, Row, Table
from agentlog.consumers.sinks.base import AppliedLog, LastApplied, SentDeadLetter, Sink, Where
from agentlog.consumers.sinks.sql import (
    Dialect,
    SqlTransaction,
    create_all,
    quoted,
    row_of,
    select_statement,
    upsert_assignments,
)
from agentlog.errors import SinkError
from agentlog.secret_redaction import without_secrets


class PostgresDialect(Dialect):
    types = {
        "text": "TEXT",
        "bigint": "BIGINT",
        "double": "DOUBLE PRECISION",
        "boolean": "BOOLEAN",
        "timestamp": "TIMESTAMPTZ",
        "text[]": "TEXT[]",
    }
    now = "now()"

    def param(self, kind: str) -> str:
        return "%s"

    def timestamp_from_micros(self, expression: str) -> str:
        return f"('epoch'::timestamptz + {expression} * interval '1 microsecond')"

    def micros_from_timestamp(self, expression: str) -> str:
        return f"(extract(epoch from {expression}) * 1000000)::bigint"

    def array_contains(self, column: str) -> str:
        return f"%s = ANY({column})"

    def rows_of(self, columns: list[tuple[str, str]], alias: str) -> str:
        arrays = ", ".join(f"%s::{kind}[]" for _, kind in columns)
        names = ", ".join(quoted(name) for name, _ in columns)
        return f"unnest({arrays}) AS {alias}({names})"


class PostgresTransaction(SqlTransaction):
    def upsert(self, table: Table, rows: list[Row]) -> None:
        if not rows:
            return
        columns = list(table.columns)
        values = ", ".join(
            self.dialect.timestamp_from_micros("%s::bigint")
            if table.columns[c] == "timestamp"
            else "%s"
            for c in columns
        )
        names = ", ".join(quoted(c) for c in columns)
        self.cursor.executemany(
            f"INSERT INTO {quoted(table.name)} ({names}) VALUES ({values}) "
            f"{upsert_assignments(table)}",
            [[row[c] for c in columns] for row in rows],
        )


class PostgresSink(Sink):
    def __init__(self, url: str) -> None:
        self.url = url
        self.description = without_secrets(url)
        self.dialect = PostgresDialect()
        self.connection = self._connect()
        self._reader_connection: psycopg.Connection | None = None
        self._side_connection: psycopg.Connection | None = None

    def _connect(self) -> psycopg.Connection:
        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            # psycopg quotes a DSN it cannot parse, password and all.
            first = without_secrets(first)
            raise SinkError(
                f"cannot connect to PostgreSQL at {self.description}: {first}"
            ) from None

    def prepare(self, tables: Iterable[Table], group: str) -> None:
        with self.connection.transaction(), self.connection.cursor() as cursor:
            # Concurrent projectors starting together must not race on CREATE TABLE.
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('agentlog.prepare'))")
            create_all(cursor, self.dialect, tables, group)

    def stored_offsets(self, group: str, topic: str) -> dict[int, int]:
        with self.connection.cursor() as cursor:
            try:
                cursor.execute(
                    'SELECT "partition", next_offset FROM agentlog_offsets '
                    "WHERE group_id = %s AND topic = %s",
                    [group, topic],
                )
            except psycopg.errors.UndefinedTable:  # nothing projected into this database yet
                return {}
            return {int(p): int(o) for p, o in cursor.fetchall()}

    def last_applied(self, group: str, topic: str) -> dict[int, LastApplied]:
        with self._reader().cursor() as cursor:
            try:
                return PostgresTransaction(cursor, self.dialect, group, topic).last_applied()
            except psycopg.errors.UndefinedTable:
                return {}

    def stored_log(self, group: str, topic: str) -> AppliedLog | None:
        with self._reader().cursor() as cursor:
            try:
                return PostgresTransaction(cursor, self.dialect, group, topic).stored_log()
            except psycopg.errors.UndefinedTable:
                return None

    def record_log(self, group: str, topic: str, log: AppliedLog) -> AppliedLog:
        with self._reader().cursor() as cursor:
            return PostgresTransaction(cursor, self.dialect, group, topic).record_log(log)

    def refuse_log(self, group: str, topic: str, reason: str) -> None:
        with self._reader().cursor() as cursor:
            PostgresTransaction(cursor, self.dialect, group, topic).refuse_log(reason)

    def sent_dead_letters(self, group: str, ids: list[str]) -> set[str]:
        with self._side().cursor() as cursor:
            return PostgresTransaction(cursor, self.dialect, group, "").sent_dead_letters(ids)

    def record_sent_dead_letters(self, group: str, topic: str, sent: list[SentDeadLetter]) -> None:
        with self._side().cursor() as cursor:
            PostgresTransaction(cursor, self.dialect, group, topic).record_sent_dead_letters(sent)

    def load(self, table: Table, keys: list[Key]) -> dict[Key, Row]:
        with self._reader().cursor() as cursor:
            return PostgresTransaction(cursor, self.dialect, "", "").load(table, keys)

    def applied_among(self, group: str, event_ids: list[str]) -> set[str]:
        with self._reader().cursor() as cursor:
            return PostgresTransaction(cursor, self.dialect, group, "").applied_among(event_ids)

    def _reader(self) -> psycopg.Connection:
        """A second connection for committed reads beside a running transaction."""
        if self._reader_connection is None:
            self._reader_connection = self._connect()
        return self._reader_connection

    def _side(self) -> psycopg.Connection:
        """A third, for the transactions' thread to commit beside its transaction."""
        if self._side_connection is None:
            self._side_connection = self._connect()
        return self._side_connection

    @contextmanager
    def transaction(self, group: str, topic: str) -> Iterator[PostgresTransaction]:
        with self.connection.transaction(), self.connection.cursor() as cursor:
            yield PostgresTransaction(cursor, self.dialect, group, topic)

    def select(
        self,
        table: Table,
        where: Sequence[Where] = (),
        *,
        order_by: Sequence[str] = (),
        limit: int | None = None,
    ) -> list[Row]:
        sql, params = select_statement(self.dialect, table, where, order_by, limit)
        with self._reader().cursor() as cursor:
            try:
                cursor.execute(sql, params)
            except psycopg.errors.UndefinedTable:
                raise SinkError(
                    f"{self.description} has no {table.name} table yet: run `agentlog project run`"
                ) from None
            return [row_of(table, values) for values in cursor.fetchall()]

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params or [])
            return cursor.fetchall()

    def close(self) -> None:
        for connection in (self._reader_connection, self._side_connection):
            if connection is not None:
                connection.close()
        self.connection.close()
