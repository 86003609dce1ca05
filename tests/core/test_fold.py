"""The fold without a broker: records to events, events and rows to changed rows, the
runner's Folder, and the built-in projections against the independent fold."""

from __future__ import annotations

import copy
import random

import pytest
from helpers.crash_projection import FailsOnRefunds
from helpers.independent_fold import assert_tables_match
from helpers.independent_fold import fold as independent_fold
from helpers.offline_log import OfflineLog, built_ins, events_of, fold_log, simulated_log, tables_of
from helpers.sample_events import sample_events

from agentlog.consumers import fold as fold_module
from agentlog.consumers.fold import Batch, Folder, fold
from agentlog.consumers.projection import Projection, Table, handles
from agentlog.errors import DecodeError
from agentlog.recorded import Position, event_of
from agentlog.serde import decode, encode_event, micros_of

CONVERSATIONS = "agentlog_conversations"


def test_a_record_and_its_position_become_the_event_handlers_see() -> None:
    for sample in sample_events("conv-r"):
        position = Position("agentlog.events", 4, 1234, 1_795_523_773_593)
        event = event_of(decode(encode_event(sample)), position)
        assert event.event_id == sample.event_id
        assert event.conversation_id == "conv-r"
        assert event.occurred_at == micros_of(sample.occurred_at)
        assert event.event_type == sample.event_type
        assert event.payload == sample.payload.model_dump()
        assert event.source == sample.source.model_dump()
        assert (event.causation_id, event.trace_id, event.span_id) == (
            sample.causation_id,
            sample.trace_id,
            sample.span_id,
        )
        assert (event.topic, event.partition, event.offset) == ("agentlog.events", 4, 1234)
        assert event.position == position


def test_a_record_of_an_unknown_payload_type_is_a_decode_error_naming_where_it_is() -> None:
    record = decode(encode_event(sample_events()[0]))
    record["payload"] = ("agentlog.FromTheFuture", {})
    with pytest.raises(DecodeError, match=r"at agentlog.events\[1\]@7: .*FromTheFuture"):
        event_of(record, Position("agentlog.events", 1, 7))


def test_the_fold_module_holds_no_kafka_client_types() -> None:
    kafka_types = [
        name
        for name, value in vars(fold_module).items()
        if getattr(value, "__module__", "").startswith("confluent_kafka")
    ]
    assert kafka_types == []


@pytest.mark.parametrize("seed", [3, 17])
def test_the_built_in_projections_equal_the_independent_fold(seed: int) -> None:
    log = simulated_log(150, seed=seed)
    folded = fold_log(log.records)
    assert folded.duplicates == 0 and not folded.failed
    assert len(folded.applied) == len(log.records)
    assert_tables_match(tables_of(folded), independent_fold(log.records))


def test_folding_in_batches_gives_the_rows_of_one_fold_and_applies_each_event_once() -> None:
    """What the runner does: batch after batch, on the rows so far, skipping the ids
    applied before, with the producer's retries repeating some events later on."""
    log = simulated_log(80, seed=5)
    rng = random.Random(5)
    repeated = rng.sample(log.records, 200)
    for record in repeated:  # produced twice: the same bytes again, later in the log
        log.append(record.key, record.value, record.timestamp)
    events = events_of(log.records)
    rows: dict[str, dict] = {}
    applied: set[str] = set()
    duplicates = 0
    start = 0
    while start < len(events):
        end = start + rng.randrange(1, 400)
        result = fold(built_ins(), events[start:end], rows, skip=applied)
        for name, changed in result.changed.items():
            rows.setdefault(name, {}).update(changed)
        applied.update(e.event_id for e in result.applied)
        duplicates += result.duplicates
        start = end
    assert duplicates == len(repeated)
    assert len(applied) == len(log.records) - len(repeated)
    whole = {name: list(r.values()) for name, r in rows.items()}
    assert_tables_match(whole, independent_fold(log.records))
    assert whole == tables_of(fold_log(log.records[: len(log.records) - len(repeated)]))


def test_a_fold_never_changes_the_rows_it_is_given() -> None:
    log = simulated_log(20)
    first, rest = log.records[:150], log.records[150:]
    stored = fold_log(first).changed
    before = copy.deepcopy(stored)
    result = fold(built_ins(), events_of(rest), stored)
    assert stored == before
    for name, changed in result.changed.items():
        for key, row in changed.items():
            assert row is not stored[name].get(key)
    agents = next(iter(result.changed[CONVERSATIONS].values()))["agents"]
    agents.append("changed by the caller")
    assert stored == before


def test_rows_not_given_are_looked_up_once_per_table() -> None:
    log = simulated_log(10)
    events = events_of(log.records)
    cid = events[0].conversation_id
    stored = dict(fold_log(log.records).changed[CONVERSATIONS][(cid,)], events=1000)
    asked: list[tuple[str, list]] = []

    def load(table, keys):
        asked.append((table.name, sorted(keys)))
        return {(cid,): stored} if table.name == CONVERSATIONS and (cid,) in keys else {}

    mine = [e for e in events if e.conversation_id == cid]
    result = fold(built_ins(), mine, load=load)
    assert sorted(name for name, _ in asked) == sorted(
        ["agentlog_conversations", "agentlog_conversation_index", "agentlog_tool_calls"]
    )
    assert (CONVERSATIONS, [(cid,)]) in asked
    assert result.changed[CONVERSATIONS][(cid,)]["events"] == 1000 + len(mine)


def test_repeated_ids_and_ids_applied_before_change_nothing() -> None:
    events = events_of(simulated_log(10).records)
    again = events[:30] + events + events[5:10]
    skip = {e.event_id for e in events[-20:]}
    result = fold(built_ins(), again, skip=skip)
    assert result.duplicates == len(again) - (len(events) - 20)
    assert [e.event_id for e in result.applied] == [e.event_id for e in events[:-20]]
    assert result.changed == fold(built_ins(), events[:-20]).changed


def test_an_event_whose_handler_always_fails_changes_nothing_and_the_rest_apply() -> None:
    events = events_of(simulated_log(60).records)
    sagas = [e for e in events if e.event_type == "saga_step_started"]
    assert sagas
    result = fold([*built_ins(), FailsOnRefunds()], events)
    assert [e for e, _ in result.failed] == sagas
    assert all(str(error).startswith("cannot handle saga") for _, error in result.failed)
    rest = [e for e in events if e.event_type != "saga_step_started"]
    assert result.applied == rest
    # not even the projections whose handlers did not fail saw the failed events
    assert result.changed == fold(built_ins(), rest).changed


class Flaky(Projection):
    """Fails the first `failures` times it sees each event, then counts it."""

    name = "flaky"
    tables = (
        Table(
            "flaky_counts",
            key=("conversation_id",),
            columns={"conversation_id": "text", "seen": "bigint"},
            key_of=lambda e: (e.conversation_id,),
        ),
    )

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.tries: dict[str, int] = {}

    @handles("user_message")
    def count(self, event, state) -> None:
        state.row("flaky_counts", (event.conversation_id,))["seen"] += 1
        self.tries[event.event_id] = self.tries.get(event.event_id, 0) + 1
        if self.tries[event.event_id] <= self.failures:
            raise RuntimeError("not yet")


@pytest.mark.parametrize(
    ("attempts", "failures", "applies"), [(3, 2, True), (3, 3, False), (1, 0, True), (1, 1, False)]
)
def test_a_handler_gets_its_attempts_and_no_more_before_its_event_fails(
    attempts, failures, applies
) -> None:
    log = OfflineLog()
    log.user_message("c", "hello")
    log.user_message("c", "again")
    flaky = Flaky(failures)
    result = fold([flaky], events_of(log.records), handler_attempts=attempts)
    assert len(result.applied) == (2 if applies else 0)
    assert len(result.failed) == (0 if applies else 2)
    assert result.changed["flaky_counts"].get(("c",), {}).get("seen") == (2 if applies else None)
    assert all(tries == (failures + 1 if applies else attempts) for tries in flaky.tries.values())


def test_the_folder_remembers_rows_between_batches_until_told_to_forget() -> None:
    events = events_of(simulated_log(30).records)
    looked_up: list = []

    def load(table, keys):
        looked_up.extend((table.name, k) for k in keys)
        return {}

    folder = Folder(built_ins(), handler_attempts=3, cache_rows=10_000)
    half = len(events) // 2
    first = Batch(events[:half], [], {})
    folder.fold(first, set(), load)
    assert len(first.applied) == half and first.duplicates == 0 and not first.dead
    seen = set(looked_up)
    looked_up.clear()
    second = Batch(events[half:], [], {})
    folder.fold(second, set(), load)
    assert not seen & set(looked_up)  # no row the first batch folded is looked up again
    rows = {
        name: {tuple(r[k] for k in folder.tables[name].key): r for r in changed}
        for name, changed in first.changed.items()
    }
    for name, changed in second.changed.items():
        for row in changed:
            rows[name][tuple(row[k] for k in folder.tables[name].key)] = row
    assert {n: list(r.values()) for n, r in rows.items()} == tables_of(fold(built_ins(), events))

    folder.forget()
    looked_up.clear()
    folder.fold(Batch(events[:10], [], {}), set(), load)
    assert looked_up  # forgotten rows are looked up again


def test_the_folder_dead_letters_failed_events_by_their_position() -> None:
    events = events_of(simulated_log(60).records)
    batch = Batch(events, [], {})
    Folder([*built_ins(), FailsOnRefunds()], handler_attempts=2, cache_rows=1000).fold(
        batch, set(), lambda table, keys: {}
    )
    sagas = [e for e in events if e.event_type == "saga_step_started"]
    assert [position for position, _, _ in batch.dead] == [e.position for e in sagas]
    assert all(
        error.startswith("handler failed: ValueError: cannot handle saga") and attempts == 2
        for _, error, attempts in batch.dead
    )
    assert len(batch.applied) == len(events) - len(sagas)
