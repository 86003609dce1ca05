"""The sink bookkeeping the projection runner relies on beyond the row contract: which
log was applied, the last record applied per partition, the dedup window, dead letters
sent. On every sink: memory, DuckDB and PostgreSQL."""

from __future__ import annotations

import pytest

from agentlog.consumers import RecordedEvent, open_sink
from agentlog.consumers.sinks import AppliedLog, LastApplied, SentDeadLetter
from agentlog.testing import CONTRACT_TABLE

TABLE = CONTRACT_TABLE


def _event(event_id: str, offset: int, occurred_at: int = 0) -> RecordedEvent:
    return RecordedEvent(
        event_id, "c", occurred_at, "user_message", {}, {}, None, None, None, "t", 0, offset
    )


@pytest.fixture(params=["memory", "duckdb", "postgresql"])
def any_sink_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "memory":
        return "memory:"
    if request.param == "duckdb":
        return f"duckdb:{tmp_path / 'bookkeeping.duckdb'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def sink(any_sink_url: str):
    sink_url = any_sink_url
    with open_sink(sink_url) as opened:
        assert opened.stored_offsets("g", "t") == {}  # before any table exists
        opened.prepare([TABLE], "g")
        opened.prepare([TABLE], "g")  # idempotent
        yield opened


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
