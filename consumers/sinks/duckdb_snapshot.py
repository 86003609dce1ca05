"""Read snapshots of a DuckDB sink, so people can look while the projector writes.

DuckDB lets one process open a file for writing and no other process open it at all
meanwhile. So the writing sink copies its committed state to `<file>.snapshot` after a
commit, at most every so often (never more than about 5% of the writer's time), by
writing a new file and renaming it over the old one: a reader opens either the previous
snapshot or the next one, never half of one. Readers that find the file locked open the
snapshot instead and say how old it is.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from agentlog.private_files import FILE_MODE, scratch_beside

# The share of the writer's time that copying may take, and the shortest interval.
_MAX_SHARE = 0.05
_MIN_INTERVAL_SECONDS = 1.0


def snapshot_path(path: str | Path) -> Path:
    return Path(f"{path}.snapshot")


def taken_at(path: Path) -> str:
    moment = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


class SnapshotPublisher:
    """Copies the committed database beside itself when enough time has passed. A
    commit that comes too soon after a copy is published later, by a timer, so the
    snapshot catches up even when the writer then goes idle. `lock` is the one the
    sink's writes hold: the copy never runs beside a transaction."""

    def __init__(
        self, connection: duckdb.DuckDBPyConnection, path: str, lock: threading.Lock
    ) -> None:
        self.connection = connection
        self.lock = lock
        self.target = snapshot_path(path)
        row = connection.execute("SELECT current_database()").fetchone()
        assert row is not None  # current_database() always answers one row
        self.database = str(row[0])
        self.last_copy_seconds = 0.0
        self.next_due = 0.0  # the first commit publishes at once
        self.pending = False
        self.timer: threading.Timer | None = None
        self.closed = False

    def after_commit(self) -> None:
        """Called with `lock` held, right after a commit."""
        self.pending = True
        delay = self.next_due - time.monotonic()
        if delay <= 0:
            self._publish()
        elif self.timer is None:
            self.timer = threading.Timer(delay, self._publish_pending)
            self.timer.daemon = True
            self.timer.start()

    def close(self) -> None:
        with self.lock:
            self.closed = True
            if self.timer is not None:
                self.timer.cancel()

    def _publish_pending(self) -> None:
        with self.lock:
            self.timer = None
            if self.pending and not self.closed:
                self._publish()

    def _publish(self) -> None:
        started = time.monotonic()
        # DuckDB makes the copy in a private folder of an unguessable name (a file of a
        # predictable name beside the target could be a planted link), then it is renamed.
        scratch = scratch_beside(self.target)
        try:
            partial = scratch / self.target.name
            self.connection.execute(f"ATTACH '{_literal(partial)}' AS agentlog_snapshot")
            try:
                self.connection.execute(
                    f'COPY FROM DATABASE "{self.database}" TO agentlog_snapshot'
                )
            finally:
                self.connection.execute("DETACH agentlog_snapshot")
            os.chmod(partial, FILE_MODE)
            os.replace(partial, self.target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        self.pending = False
        self.last_copy_seconds = time.monotonic() - started
        interval = max(_MIN_INTERVAL_SECONDS, self.last_copy_seconds / _MAX_SHARE)
        self.next_due = time.monotonic() + interval


def _literal(path: Path) -> str:
    return str(path).replace("'", "''")
