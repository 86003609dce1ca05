"""The sink contract (consumers/sinks/base.py), one suite run on DuckDB and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from agentlog.consumers import Fenced, RecordedEvent, Table, open_sink
from agentlog.consumers.sinks import AppliedLog, LastApplied, SentDeadLetter

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


def _event(event_id: str, offset: int, occurred_at: int = 0) -> RecordedEvent:
    return RecordedEvent(
        event_id, "c", occurred_at, "user_message", {}, {}, None, None, None, "t", 0, offset
    )


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


def test_the_log_is_recorded_once_and_a_refusal_sticks(sink) -> None:
    assert sink.stored_log("g", "t") is None
    first = AppliedLog("topic-id-1", 6)
    assert sink.record_log("g", "t", first) == first
    # A second member (or a later run) finds the log of whoever came first.
    assert sink.record_log("g", "t", AppliedLog("topic-id-2", 8)) == first
    assert sink.record_log("other-group", "t", AppliedLog(None, 3)) == AppliedLog(None, 3)
    sink.refuse_log("g", "t", "partitions 6 -> 8")
    sink.refuse_log("g", "t", "a later reason")
    refused = AppliedLog("topic-id-1", 6, "partitions 6 -> 8")
    assert sink.stored_log("g", "t") == refused
    with sink.transaction("g", "t") as tx:
        assert tx.stored_log() == refused
    assert sink.stored_log("other-group", "t") == AppliedLog(None, 3)


def test_the_last_applied_record_moves_with_the_offsets(sink) -> None:
    with sink.transaction("g", "t") as tx:
        tx.claim({0: (None, 10), 1: (None, 5)})
        tx.mark_last({0: LastApplied(9, "e9"), 1: LastApplied(3, "e3")})
    assert sink.last_applied("g", "t") == {0: LastApplied(9, "e9"), 1: LastApplied(3, "e3")}
    with pytest.raises(RuntimeError):
        with sink.transaction("g", "t") as tx:
            tx.claim({0: (10, 12)})
            tx.mark_last({0: LastApplied(11, "e11")})
            raise RuntimeError("crash before commit")
    assert sink.last_applied("g", "t")[0] == LastApplied(9, "e9")
    with sink.transaction("g", "t") as tx:
        tx.claim({0: (10, 14)})  # the last records were not events (a transaction marker)
    assert sink.last_applied("g", "t")[0] == LastApplied(9, "e9")
    assert sink.stored_offsets("g", "t")[0] == 14
    assert sink.last_applied("other-group", "t") == {}


def test_applied_ids_are_forgotten_by_event_time_per_partition(sink) -> None:
    hour = 3600 * 1_000_000

    def event(n: int, partition: int) -> RecordedEvent:
        applied = _event(f"e{n}-{partition}", n, occurred_at=n * hour)
        applied.partition = partition
        return applied

    with sink.transaction("g", "t") as tx:
        assert tx.mark_applied([event(n, p) for n in range(10) for p in (0, 1)]) == 20
    with sink.transaction("g", "t") as tx:
        assert tx.forget_applied_before({0: 4 * hour, 1: 2 * hour}) == 4 + 2
        assert tx.forget_applied_before({0: 4 * hour}) == 0
    ids = [f"e{n}-{p}" for n in range(10) for p in (0, 1)]
    assert sink.applied_among("g", ids) == {
        f"e{n}-{p}" for n in range(10) for p in (0, 1) if n >= (4 if p == 0 else 2)
    }
    with sink.transaction("g", "t") as tx:
        # A forgotten id counts as new again; a remembered one does not.
        assert tx.mark_applied([event(1, 0), event(5, 0)]) == 1


def test_sent_dead_letters_outlive_a_rollback_until_their_batch_commits(sink) -> None:
    letters = [SentDeadLetter("t/0/3", 0, 3), SentDeadLetter("t/1/8", 1, 8)]
    with pytest.raises(RuntimeError):
        with sink.transaction("g", "t") as tx:
            tx.claim({0: (None, 5), 1: (None, 9)})
            sink.record_sent_dead_letters("g", "t", letters)
            raise RuntimeError("the batch rolled back after its dead letters were sent")
    assert sink.sent_dead_letters("g", ["t/0/3", "t/1/8", "t/2/0"]) == {"t/0/3", "t/1/8"}
    assert sink.sent_dead_letters("other-group", ["t/0/3"]) == set()
    with sink.transaction("g", "t") as tx:
        tx.claim({0: (None, 5)})  # the retry commits partition 0 past offset 3
    with sink.transaction("g", "t") as tx:
        tx.forget_sent_dead_letters()
    assert sink.sent_dead_letters("g", ["t/0/3", "t/1/8"]) == {"t/1/8"}


def test_a_sink_created_before_the_bookkeeping_grew_is_brought_up_to_date(
    sink_url: str,
) -> None:
    old_tables = [
        "CREATE TABLE agentlog_offsets (group_id TEXT NOT NULL, topic TEXT NOT NULL, "
        '"partition" BIGINT NOT NULL, next_offset BIGINT NOT NULL, updated_at TIMESTAMP, '
        'PRIMARY KEY (group_id, topic, "partition"))',
        "CREATE TABLE agentlog_applied_events (group_id TEXT NOT NULL, event_id TEXT NOT NULL, "
        '"partition" BIGINT, "offset" BIGINT, PRIMARY KEY (group_id, event_id))',
    ]
    if sink_url.startswith("duckdb:"):
        import duckdb

        with duckdb.connect(sink_url.removeprefix("duckdb:")) as old:
            for statement in old_tables:
                old.execute(statement)
    else:
        import psycopg

        with psycopg.connect(sink_url, autocommit=True) as old:
            for statement in old_tables:
                old.execute(statement)
    with open_sink(sink_url) as upgraded:
        upgraded.prepare([TABLE], "g")
        with upgraded.transaction("g", "t") as tx:
            tx.claim({0: (None, 2)})
            tx.mark_last({0: LastApplied(1, "e1")})
            assert tx.mark_applied([_event("e1", 1, occurred_at=7)]) == 1
        assert upgraded.last_applied("g", "t") == {0: LastApplied(1, "e1")}
