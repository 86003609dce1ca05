"""The projector reads its stored offsets (when the group gives it partitions, e.g. after
a broker that coordinated the group was killed) while the DuckDB sink's timer may be
copying a snapshot on the sink's connection: the read must not fail because the
connection is busy (found by tests/brokers/test_cluster.py: `project run` exited with DuckDB's
"connection is busy with another call")."""

from __future__ import annotations

import threading
from pathlib import Path

from agentlog.consumers.sinks.duckdb_sink import DuckDBSink


def test_stored_offsets_are_read_while_the_connection_is_busy(tmp_path: Path) -> None:
    sink = DuckDBSink(tmp_path / "p.duckdb")
    try:
        sink.prepare([], "g")
        with sink.transaction("g", "events") as tx:
            tx.claim({0: (None, 7), 1: (None, 9)})
        expected = {0: 7, 1: 9}
        assert sink.stored_offsets("g", "events") == expected
        started = threading.Event()

        def busy() -> None:
            # What the snapshot timer does: a long call on the sink's own connection.
            with sink._write_lock:
                started.set()
                sink.connection.execute("SELECT count(*) FROM range(400000000)").fetchall()

        copier = threading.Thread(target=busy)
        copier.start()
        assert started.wait(10)
        reads = 0
        while copier.is_alive():
            assert sink.stored_offsets("g", "events") == expected
            reads += 1
        copier.join(30)
        assert reads > 0, "the busy call ended before any read: make it longer"
    finally:
        sink.close()
