"""The sink contract (consumers/sinks/base.py), one suite run on DuckDB and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from agentlog.consumers import Fenced, RecordedEvent, Table, open_sink
from agentlog.errors import SinkError

TABLE = Table(
    "contract_rows",
    key=("conversation_id", "item"),
    columns={
        "conversation_id": "text",
        "item": "text",
        "count": "bigint",
        "ratio": "double",
        "flag": "boolean",
        "seen_at": "timestamp",
        "tags": "text[]",
        "note": "text",
    },
    key_of=lambda e: (e.conversation_id, "x"),
)


def _event(event_id: str, offset: int) -> RecordedEvent:
    return RecordedEvent(event_id, "c", 0, "user_message", {}, {}, None, None, None, "t", 0, offset)


@pytest.fixture
def sink(sink_url: str):
    with open_sink(sink_url) as opened:
        assert opened.stored_offsets("g", "t") == {}  # before any table exists
        opened.prepare([TABLE], "g")
        opened.prepare([TABLE], "g")  # idempotent
        yield opened


def test_offsets_move_only_from_what_was_read(sink) -> None:
    with sink.transaction("g", "t") as tx:
        tx.claim({0: (None, 10), 1: (None, 5)})
    assert sink.stored_offsets("g", "t") == {0: 10, 1: 5}
    with sink.transaction("g", "t") as tx:
        tx.claim({0: (10, 20)})
    with pytest.raises(Fenced):
        with sink.transaction("g", "t") as tx:
            tx.upsert(TABLE, [TABLE.new_row(("c", "written by a zombie"))])
            tx.claim({1: (5, 9), 0: (10, 30)})  # partition 0 moved on since 10
    assert sink.stored_offsets("g", "t") == {0: 20, 1: 5}  # nothing of the zombie stayed
    with sink.transaction("g", "t") as tx:
        assert tx.load(TABLE, [("c", "written by a zombie")]) == {}
    with pytest.raises(Fenced):
        with sink.transaction("g", "t") as tx:
            tx.claim({0: (None, 1)})  # "nothing stored yet" is stale too
    assert sink.stored_offsets("other-group", "t") == {}


def test_event_ids_apply_once_across_transactions(sink) -> None:
    with sink.transaction("g", "t") as tx:
        assert tx.mark_applied([_event("a", 0), _event("b", 1)]) == 2
    with sink.transaction("g", "t") as tx:
        assert tx.mark_applied([_event("b", 7), _event("c", 8)]) == 1  # b was applied
    assert sink.applied_among("g", ["a", "c", "never"]) == {"a", "c"}
    assert sink.applied_among("another-group", ["a", "c"]) == set()
    with pytest.raises(RuntimeError):
        with sink.transaction("g", "t") as tx:
            tx.mark_applied([_event("d", 10)])
            raise RuntimeError("crash before commit")
    assert sink.applied_among("g", ["d"]) == set()
    with sink.transaction("g", "t") as tx:
        assert tx.mark_applied([_event("d", 10)]) == 1


def test_committed_reads_run_beside_a_transaction_and_see_only_what_committed(sink) -> None:
    row = dict(TABLE.new_row(("c", "x")), count=1)
    with ThreadPoolExecutor(1) as other_thread:
        with sink.transaction("g", "t") as tx:
            tx.upsert(TABLE, [row])
            tx.mark_applied([_event("e", 0)])
            assert other_thread.submit(sink.load, TABLE, [("c", "x")]).result() == {}
            assert other_thread.submit(sink.applied_among, "g", ["e"]).result() == set()
        assert other_thread.submit(sink.load, TABLE, [("c", "x")]).result() == {("c", "x"): row}
        assert other_thread.submit(sink.applied_among, "g", ["e"]).result() == {"e"}


def test_rows_round_trip_every_column_type_exactly(sink) -> None:
    row = {
        "conversation_id": "c",
        "item": "x",
        "count": 2**40,
        "ratio": 0.1,
        "flag": True,
        "seen_at": 1_795_523_773_593_073,  # microseconds survive exactly
        "tags": ["triage", "billing"],
        "note": "ü ✓",
    }
    empty = TABLE.new_row(("c", "y"))
    with sink.transaction("g", "t") as tx:
        tx.upsert(TABLE, [row, empty])
    with sink.transaction("g", "t") as tx:
        found = tx.load(TABLE, [("c", "x"), ("c", "y"), ("c", "missing")])
    assert found == {("c", "x"): row, ("c", "y"): empty}
    changed = dict(row, count=3, tags=[], note=None, seen_at=None)
    with sink.transaction("g", "t") as tx:
        tx.upsert(TABLE, [changed])
    with sink.transaction("g", "t") as tx:
        assert tx.load(TABLE, [("c", "x")]) == {("c", "x"): changed}


def test_a_second_group_cannot_take_over_the_tables(sink) -> None:
    with pytest.raises(SinkError, match="maintained by consumer group 'g'"):
        sink.prepare([TABLE], "intruder")
