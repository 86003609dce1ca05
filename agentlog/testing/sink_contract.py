"""The sink contract as a test suite, for any sink: agentlog's own and yours.

`agentlog.consumers.sinks.base` states the contract in words; this is the same
contract as pytest tests (the way eventsourcing's `tests/persistence.py` holds one
test case per recorder contract). The memory, DuckDB and PostgreSQL sinks pass it. To
check a sink of your own, subclass `SinkContract` in a test module and give it a
`sink_url` fixture (a fresh, empty store per test); override `open` if
`agentlog.consumers.sinks.open_sink` does not know your URLs:

    from agentlog.testing import SinkContract

    class TestMySink(SinkContract):
        @pytest.fixture
        def sink_url(self, tmp_path):
            return f"mysink:{tmp_path / 'state'}"

        def open(self, url):
            return MySink(url.removeprefix("mysink:"))

Needs pytest (a test-time dependency; agentlog never imports this module itself).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

try:
    import pytest
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "agentlog.testing is a pytest suite: install pytest to use it (pip install pytest)"
    ) from exc

from agentlog.consumers.projection import RecordedEvent, Table
from agentlog.consumers.sinks import Fenced, Sink, Where, open_sink
from agentlog.errors import ConfigurationError, SinkError

__all__ = ["CONTRACT_TABLE", "SinkContract"]

CONTRACT_TABLE = Table(
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
TABLE = CONTRACT_TABLE
GROUP = "g"
TOPIC = "t"


def _event(event_id: str, offset: int, partition: int = 0) -> RecordedEvent:
    return RecordedEvent(
        event_id, "c", 0, "user_message", {}, {}, None, None, None, TOPIC, partition, offset
    )


def _row(item: str, **values: Any) -> dict[str, Any]:
    return dict(TABLE.new_row(("c", item)), **values)


class SinkContract:
    """One test per promise of the sink contract. Subclasses supply `sink_url`."""

    def open(self, url: str) -> Sink:
        """The sink at `url`."""
        return open_sink(url)

    @pytest.fixture
    def sink(self, sink_url: str) -> Iterator[Sink]:
        """A prepared sink on a fresh store."""
        with self.open(sink_url) as opened:
            assert opened.stored_offsets(GROUP, TOPIC) == {}  # before any table exists
            opened.prepare([TABLE], GROUP)
            opened.prepare([TABLE], GROUP)  # idempotent
            yield opened

    def test_offsets_move_only_from_what_was_read(self, sink: Sink) -> None:
        with sink.transaction(GROUP, TOPIC) as tx:
            tx.claim({0: (None, 10), 1: (None, 5)})
        assert sink.stored_offsets(GROUP, TOPIC) == {0: 10, 1: 5}
        with sink.transaction(GROUP, TOPIC) as tx:
            tx.claim({0: (10, 20)})
        with pytest.raises(Fenced):
            with sink.transaction(GROUP, TOPIC) as tx:
                tx.upsert(TABLE, [TABLE.new_row(("c", "written by a zombie"))])
                tx.claim({1: (5, 9), 0: (10, 30)})  # partition 0 moved on since 10
        assert sink.stored_offsets(GROUP, TOPIC) == {0: 20, 1: 5}  # nothing of the zombie
        with sink.transaction(GROUP, TOPIC) as tx:
            assert tx.load(TABLE, [("c", "written by a zombie")]) == {}
        with pytest.raises(Fenced):
            with sink.transaction(GROUP, TOPIC) as tx:
                tx.claim({0: (None, 1)})  # "nothing stored yet" is stale too
        assert sink.stored_offsets("other-group", TOPIC) == {}
        assert sink.stored_offsets(GROUP, "other-topic") == {}

    def test_a_start_position_is_the_first_claim_and_stays_recorded(self, sink: Sink) -> None:
        assert sink.started_at(GROUP, TOPIC) == {}  # nothing recorded: from the beginning
        with pytest.raises(RuntimeError):
            with sink.transaction(GROUP, TOPIC) as tx:
                tx.claim({0: (None, 40), 1: (None, 7)})
                tx.mark_start({0: 40, 1: 7})
                raise RuntimeError("crash before commit")
        assert sink.started_at(GROUP, TOPIC) == {}
        assert sink.stored_offsets(GROUP, TOPIC) == {}
        with sink.transaction(GROUP, TOPIC) as tx:
            tx.claim({0: (None, 40), 1: (None, 7)})
            tx.mark_start({0: 40, 1: 7})
        assert sink.stored_offsets(GROUP, TOPIC) == {0: 40, 1: 7}
        assert sink.started_at(GROUP, TOPIC) == {0: 40, 1: 7}
        with pytest.raises(Fenced):  # a second member starting the group too is fenced
            with sink.transaction(GROUP, TOPIC) as tx:
                tx.claim({0: (None, 99)})
                tx.mark_start({0: 99})
        with sink.transaction(GROUP, TOPIC) as tx:  # applying on keeps the start
            tx.claim({0: (40, 50), 2: (None, 3)})
        assert sink.stored_offsets(GROUP, TOPIC) == {0: 50, 1: 7, 2: 3}
        assert sink.started_at(GROUP, TOPIC) == {0: 40, 1: 7}
        assert sink.started_at("other-group", TOPIC) == {}
        assert sink.started_at(GROUP, "other-topic") == {}

    def test_event_ids_apply_once_across_transactions(self, sink: Sink) -> None:
        with sink.transaction(GROUP, TOPIC) as tx:
            assert tx.mark_applied([_event("a", 0), _event("b", 1)]) == 2
        with sink.transaction(GROUP, TOPIC) as tx:
            assert tx.mark_applied([_event("b", 7), _event("c", 8)]) == 1  # b was applied
        assert sink.applied_among(GROUP, ["a", "c", "never"]) == {"a", "c"}
        assert sink.applied_among("another-group", ["a", "c"]) == set()
        with pytest.raises(RuntimeError):
            with sink.transaction(GROUP, TOPIC) as tx:
                tx.mark_applied([_event("d", 10)])
                raise RuntimeError("crash before commit")
        assert sink.applied_among(GROUP, ["d"]) == set()
        with sink.transaction(GROUP, TOPIC) as tx:
            assert tx.mark_applied([_event("d", 10)]) == 1
            assert tx.mark_applied([_event("d", 10), _event("e", 11)]) == 1  # d: this tx

    def test_a_transaction_reads_its_own_writes(self, sink: Sink) -> None:
        first, second = _row("x", count=1), _row("x", count=2, tags=["late"])
        with sink.transaction(GROUP, TOPIC) as tx:
            tx.upsert(TABLE, [first])
            assert tx.load(TABLE, [("c", "x")]) == {("c", "x"): first}
            tx.upsert(TABLE, [second])  # the last write of a key wins
            assert tx.load(TABLE, [("c", "x")]) == {("c", "x"): second}
        assert sink.load(TABLE, [("c", "x")]) == {("c", "x"): second}

    def test_nothing_of_a_rolled_back_transaction_stays(self, sink: Sink) -> None:
        with sink.transaction(GROUP, TOPIC) as tx:
            tx.claim({0: (None, 3)})
            tx.upsert(TABLE, [_row("kept", count=1)])
        with pytest.raises(RuntimeError):
            with sink.transaction(GROUP, TOPIC) as tx:
                tx.claim({0: (3, 9)})
                tx.mark_applied([_event("lost", 5)])
                tx.upsert(TABLE, [_row("kept", count=99), _row("lost")])
                raise RuntimeError("the writer died")
        assert sink.stored_offsets(GROUP, TOPIC) == {0: 3}
        assert sink.applied_among(GROUP, ["lost"]) == set()
        assert sink.load(TABLE, [("c", "kept"), ("c", "lost")]) == {
            ("c", "kept"): _row("kept", count=1)
        }

    def test_committed_reads_run_beside_a_transaction_and_see_only_what_committed(
        self, sink: Sink
    ) -> None:
        row = _row("x", count=1)
        with ThreadPoolExecutor(1) as other_thread:
            with sink.transaction(GROUP, TOPIC) as tx:
                tx.upsert(TABLE, [row])
                tx.mark_applied([_event("e", 0)])
                assert other_thread.submit(sink.load, TABLE, [("c", "x")]).result() == {}
                assert other_thread.submit(sink.applied_among, GROUP, ["e"]).result() == set()
                assert other_thread.submit(sink.select, TABLE).result() == []
            loaded = other_thread.submit(sink.load, TABLE, [("c", "x")]).result()
            assert loaded == {("c", "x"): row}
            assert other_thread.submit(sink.applied_among, GROUP, ["e"]).result() == {"e"}
            assert other_thread.submit(sink.select, TABLE).result() == [row]

    def test_rows_round_trip_every_column_type_exactly(self, sink: Sink) -> None:
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
        with sink.transaction(GROUP, TOPIC) as tx:
            tx.upsert(TABLE, [row, empty])
        with sink.transaction(GROUP, TOPIC) as tx:
            found = tx.load(TABLE, [("c", "x"), ("c", "y"), ("c", "missing")])
        assert found == {("c", "x"): row, ("c", "y"): empty}
        changed = dict(row, count=3, tags=[], note=None, seen_at=None)
        with sink.transaction(GROUP, TOPIC) as tx:
            tx.upsert(TABLE, [changed])
        with sink.transaction(GROUP, TOPIC) as tx:
            assert tx.load(TABLE, [("c", "x")]) == {("c", "x"): changed}

    def test_rows_read_are_the_readers_own(self, sink: Sink) -> None:
        row = _row("x", tags=["a"])
        with sink.transaction(GROUP, TOPIC) as tx:
            tx.upsert(TABLE, [row])
        row["tags"].append("changed after the write")
        loaded = sink.load(TABLE, [("c", "x")])[("c", "x")]
        loaded["tags"].append("changed after the read")
        sink.select(TABLE)[0]["tags"].append("changed after the select")
        assert sink.load(TABLE, [("c", "x")]) == {("c", "x"): _row("x", tags=["a"])}

    def test_select_filters_orders_and_limits(self, sink: Sink) -> None:
        rows = [
            _row("a", count=3, ratio=0.5, seen_at=1_000, tags=["billing"], note="n"),
            _row("b", count=1, ratio=None, seen_at=2_000, tags=["sales", "billing"]),
            _row("c", count=3, ratio=0.25, seen_at=None, tags=[], note="n"),
            _row("d", count=2, ratio=0.75, seen_at=3_000, tags=["triage"]),
        ]
        with sink.transaction(GROUP, TOPIC) as tx:
            tx.upsert(TABLE, rows)

        def items(
            *where: Where, order_by: tuple[str, ...] = ("item",), limit: int | None = None
        ) -> list[str]:
            found = sink.select(TABLE, where, order_by=order_by, limit=limit)
            assert all(r in rows for r in found)  # whole rows, every column as written
            return [r["item"] for r in found]

        assert items() == ["a", "b", "c", "d"]
        assert items(Where("count", "=", 3)) == ["a", "c"]
        assert items(Where("note", "=", "n"), Where("count", ">=", 3)) == ["a", "c"]
        assert items(Where("tags", "has", "billing")) == ["a", "b"]
        assert items(Where("seen_at", ">=", 2_000)) == ["b", "d"]  # no time: no match
        assert items(Where("seen_at", "<", 2_000)) == ["a"]
        assert items(Where("ratio", "<", 0.6)) == ["a", "c"]
        assert items(order_by=("-count", "item")) == ["a", "c", "d", "b"]
        assert items(order_by=("-count", "-item")) == ["c", "a", "d", "b"]
        assert items(order_by=("ratio",)) == ["c", "a", "d", "b"]  # empty values last
        assert items(order_by=("-ratio",)) == ["d", "a", "c", "b"]  # either way
        assert items(order_by=("-seen_at",)) == ["d", "b", "a", "c"]
        assert items(order_by=("-count", "item"), limit=2) == ["a", "c"]
        assert items(Where("conversation_id", "=", "nobody")) == []

    def test_select_refuses_what_no_sink_could_answer(self, sink: Sink) -> None:
        with pytest.raises(ConfigurationError, match="no column 'nope'"):
            sink.select(TABLE, [Where("nope", "=", 1)])
        with pytest.raises(ConfigurationError, match="tags is a list"):
            sink.select(TABLE, [Where("tags", "=", "billing")])
        with pytest.raises(ConfigurationError, match="note is text, not a list"):
            sink.select(TABLE, [Where("note", "has", "n")])
        with pytest.raises(ConfigurationError, match="no value"):
            sink.select(TABLE, [Where("note", "=", None)])
        with pytest.raises(ConfigurationError, match="cannot order"):
            sink.select(TABLE, order_by=("tags",))

    def test_a_table_never_prepared_is_named_in_the_error(self, sink: Sink) -> None:
        other = Table("contract_never", key=("k",), columns={"k": "text"}, key_of=lambda e: None)
        with pytest.raises(SinkError, match="no contract_never table"):
            sink.select(other)

    def test_a_second_group_cannot_take_over_the_tables(self, sink: Sink) -> None:
        with pytest.raises(SinkError, match="maintained by consumer group 'g'"):
            sink.prepare([TABLE], "intruder")

    def test_what_committed_is_there_when_the_sink_is_opened_again(self, sink_url: str) -> None:
        with self.open(sink_url) as sink:
            sink.prepare([TABLE], GROUP)
            with sink.transaction(GROUP, TOPIC) as tx:
                tx.claim({2: (None, 7)})
                tx.mark_applied([_event("kept", 6, partition=2)])
                tx.upsert(TABLE, [_row("x", count=5)])
        with self.open(sink_url) as again:
            again.prepare([TABLE], GROUP)  # preparing again keeps what is stored
            assert again.stored_offsets(GROUP, TOPIC) == {2: 7}
            assert again.applied_among(GROUP, ["kept"]) == {"kept"}
            assert again.select(TABLE) == [_row("x", count=5)]
