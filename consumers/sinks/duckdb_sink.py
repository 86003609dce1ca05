"""DuckDB sink: one file, one writer process (DuckDB locks the file)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from agentlog.consumers.projection import Key, RecordedEvent, Row, Table
from agentlog.consumers.sinks.base import AppliedLog, LastApplied, SentDeadLetter, Sink, Where
from agentlog.consumers.sinks.duckdb_snapshot import SnapshotPublisher, snapshot_path, taken_at
from agentlog.consumers.sinks.sql import (
    APPLIED_TABLE,
    Dialect,
    SqlTransaction,
    create_all,
    quoted,
    row_of,
    select_statement,
)
from agentlog.errors import SinkError
from agentlog.private_files import FILE_MODE

_ARROW_TYPES = {
    "text": pa.string(),
    "bigint": pa.int64(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "timestamp": pa.timestamp("us"),  # UTC microseconds, as handlers hold them
    "text[]": pa.list_(pa.string()),
}


class DuckDBDialect(Dialect):
    types = {
        "text": "VARCHAR",
        "bigint": "BIGINT",
        "double": "DOUBLE",
        "boolean": "BOOLEAN",
        "timestamp": "TIMESTAMP",  # UTC
        "text[]": "VARCHAR[]",
    }
    now = "now()::TIMESTAMP"

    def param(self, kind: str) -> str:
        return "?"

    def timestamp_from_micros(self, expression: str) -> str:
        return f"make_timestamp({expression})"

    def micros_from_timestamp(self, expression: str) -> str:
        return f"epoch_us({expression})"

    def array_contains(self, column: str) -> str:
        return f"list_contains({column}, ?)"

    def rows_of(self, columns: list[tuple[str, str]], alias: str) -> str:
        unnested = ", ".join(f"unnest(?) AS {quoted(name)}" for name, _ in columns)
        return f"(SELECT {unnested}) AS {alias}"


class DuckDBTransaction(SqlTransaction):
    """Rows and event ids reach DuckDB as Arrow tables: a columnar hand-off costs about
    half of what binding Python lists as parameters does."""

    def _affected(self) -> int:
        return int(self.cursor.fetchone()[0])  # DuckDB answers a change with its row count

    def mark_applied(self, events: list[RecordedEvent]) -> int:
        if not events:
            return 0
        batch = pa.table(
            {
                "e": pa.array([e.event_id for e in events], pa.string()),
                "p": pa.array([e.partition for e in events], pa.int64()),
                "o": pa.array([e.offset for e in events], pa.int64()),
                "t": pa.array([e.occurred_at for e in events], pa.int64()),
            }
        )
        with self._registered(batch) as name:
            self.cursor.execute(
                f"INSERT INTO {APPLIED_TABLE} "
                '(group_id, event_id, "partition", "offset", occurred_at) '
                f"SELECT ?, e, p, o, t FROM {name} "
                "ON CONFLICT DO NOTHING",
                [self.group],
            )
            return self._affected()

    def upsert(self, table: Table, rows: list[Row]) -> None:
        if not rows:
            return
        batch = pa.table(
            {c: pa.array([r[c] for r in rows], _ARROW_TYPES[k]) for c, k in table.columns.items()}
        )
        # Delete and insert: DuckDB's ON CONFLICT DO UPDATE costs half as much again.
        matches = " AND ".join(f"t.{quoted(k)} = b.{quoted(k)}" for k in table.key)
        names = ", ".join(quoted(c) for c in table.columns)
        with self._registered(batch) as name:
            self.cursor.execute(
                f"DELETE FROM {quoted(table.name)} AS t USING {name} AS b WHERE {matches}"
            )
            self.cursor.execute(
                f"INSERT INTO {quoted(table.name)} ({names}) SELECT {names} FROM {name}"
            )

    @contextmanager
    def _registered(self, batch: pa.Table) -> Iterator[str]:
        name = "agentlog_batch"
        self.cursor.register(name, batch)
        try:
            yield name
        finally:
            self.cursor.unregister(name)


class DuckDBSink(Sink):
    """A DuckDB file. Its writer publishes read snapshots beside the file
    (`duckdb_snapshot`); a reader that finds the file held by a writer reads the latest
    snapshot instead, and `description` says so."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = str(path)
        self.description = f"duckdb:{self.path}"
        self.dialect = DuckDBDialect()
        self._reader: duckdb.DuckDBPyConnection | None = None
        self._snapshots: SnapshotPublisher | None = None
        # Writes and snapshot copies take turns on the one connection.
        self._write_lock = threading.Lock()
        self._side: duckdb.DuckDBPyConnection | None = None
        if read_only and not Path(self.path).exists():
            raise SinkError(f"no projections in {self.path} yet: run `agentlog project run` first")
        new = not read_only and not Path(self.path).exists()
        try:
            self.connection = duckdb.connect(self.path, read_only=read_only)
            if new:  # DuckDB made it by the umask; nothing but its header is in it yet
                os.chmod(self.path, FILE_MODE)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise SinkError(f"cannot open DuckDB file {self.path}: {exc}") from None
            if not read_only or not snapshot_path(self.path).exists():
                raise SinkError(
                    f"the DuckDB file {self.path} is in use by another process (a running "
                    "projector?); DuckDB allows one writer: stop it, or use a PostgreSQL sink "
                    "for concurrent readers and writers"
                ) from None
            self._open_snapshot()
        except duckdb.Error as exc:
            raise SinkError(f"cannot open DuckDB file {self.path}: {exc}") from None
        if not read_only:
            self._snapshots = SnapshotPublisher(self.connection, self.path, self._write_lock)

    def _open_snapshot(self) -> None:
        snapshot = snapshot_path(self.path)
        try:
            self.connection = duckdb.connect(str(snapshot), read_only=True)
        except duckdb.Error as exc:
            raise SinkError(f"cannot open the read snapshot {snapshot}: {exc}") from None
        self.reading_note = (
            f"a projector holds {self.path}: reading its snapshot of {taken_at(snapshot)}"
        )

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        self.connection.execute("BEGIN TRANSACTION")
        try:
            yield self.connection
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        self.connection.execute("COMMIT")

    def prepare(self, tables: Iterable[Table], group: str) -> None:
        with self._transaction() as connection:
            create_all(connection, self.dialect, tables, group)

    def stored_offsets(self, group: str, topic: str) -> dict[int, int]:
        # On a cursor of its own (what is committed): the projector asks when the group
        # gives it partitions, which may be while the snapshot timer copies on the main
        # connection, and DuckDB refuses a second call on a busy connection.
        try:
            with self.connection.cursor() as reader:
                rows = reader.execute(
                    'SELECT "partition", next_offset FROM agentlog_offsets '
                    "WHERE group_id = ? AND topic = ?",
                    [group, topic],
                ).fetchall()
        except duckdb.CatalogException:  # nothing projected into this file yet
            return {}
        return {int(p): int(o) for p, o in rows}

    def last_applied(self, group: str, topic: str) -> dict[int, LastApplied]:
        try:
            return self._committed_reads(group, topic).last_applied()
        except duckdb.CatalogException:  # nothing projected into this file yet
            return {}

    def stored_log(self, group: str, topic: str) -> AppliedLog | None:
        try:
            return self._committed_reads(group, topic).stored_log()
        except duckdb.CatalogException:
            return None

    def record_log(self, group: str, topic: str, log: AppliedLog) -> AppliedLog:
        return self._committed_reads(group, topic).record_log(log)

    def refuse_log(self, group: str, topic: str, reason: str) -> None:
        self._committed_reads(group, topic).refuse_log(reason)

    def sent_dead_letters(self, group: str, ids: list[str]) -> set[str]:
        return self._beside_transaction(group, "").sent_dead_letters(ids)

    def record_sent_dead_letters(self, group: str, topic: str, sent: list[SentDeadLetter]) -> None:
        self._beside_transaction(group, topic).record_sent_dead_letters(sent)

    def load(self, table: Table, keys: list[Key]) -> dict[Key, Row]:
        return self._committed_reads("").load(table, keys)

    def applied_among(self, group: str, event_ids: list[str]) -> set[str]:
        return self._committed_reads(group).applied_among(event_ids)

    def _committed_reads(self, group: str, topic: str = "") -> DuckDBTransaction:
        # A cursor is a connection of its own: it reads what is committed (and commits
        # what it writes at once), beside a transaction running on the main connection.
        if self._reader is None:
            self._reader = self.connection.cursor()
        return DuckDBTransaction(self._reader, self.dialect, group, topic)

    def _beside_transaction(self, group: str, topic: str) -> DuckDBTransaction:
        # For the thread running the transactions: a connection object serves one thread.
        if self._side is None:
            self._side = self.connection.cursor()
        return DuckDBTransaction(self._side, self.dialect, group, topic)

    @contextmanager
    def transaction(self, group: str, topic: str) -> Iterator[DuckDBTransaction]:
        with self._write_lock:
            with self._transaction() as connection:
                yield DuckDBTransaction(connection, self.dialect, group, topic)
            if self._snapshots is not None:
                self._snapshots.after_commit()

    def select(
        self,
        table: Table,
        where: Sequence[Where] = (),
        *,
        order_by: Sequence[str] = (),
        limit: int | None = None,
    ) -> list[Row]:
        sql, params = select_statement(self.dialect, table, where, order_by, limit)
        try:
            found = self._committed_reads("").cursor.execute(sql, params).fetchall()
        except duckdb.CatalogException:
            raise SinkError(
                f"{self.description} has no {table.name} table yet: run `agentlog project run`"
            ) from None
        return [row_of(table, values) for values in found]

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.connection.execute(sql, params or []).fetchall()

    def close(self) -> None:
        if self._snapshots is not None:
            self._snapshots.close()
        for cursor in (self._reader, self._side):
            if cursor is not None:
                cursor.close()
        self.connection.close()
