"""Exactly-once projections against a real broker, on DuckDB and PostgreSQL."""

from __future__ import annotations

import random

import pytest
from confluent_kafka import Producer
from helpers.crash_projection import FailsOnRefunds
from helpers.independent_fold import assert_sink_matches, decode_plain, fold
from helpers.kafka_python_reader import read_all
from helpers.workloads import project_once, record_workload

from agentlog.consumers import BUILT_IN, ProjectionRunner, open_sink
from agentlog.consumers import dead_letters as dl
from agentlog.producers import Recorder
from agentlog.settings import Settings


@pytest.fixture
def projected(settings: Settings, sink_url: str) -> Settings:
    return settings.with_overrides(sink=sink_url)


def test_projected_state_equals_an_independent_fold(projected: Settings) -> None:
    written = record_workload(projected, 120)
    progress = project_once(projected)
    assert progress.applied == written and progress.dead_lettered == 0
    expected = fold(read_all(projected.bootstrap_servers, projected.events_topic, expect=written))
    with open_sink(projected.sink_url) as sink:
        assert_sink_matches(sink, expected)
    # Running again finds nothing new: offsets came from the sink.
    assert project_once(projected).applied == 0


def test_the_memory_sink_holds_what_the_database_sinks_hold(settings: Settings) -> None:
    """The runner on the memory sink: its writer thread and committed reads, in-process."""
    projected = settings.with_overrides(sink=f"memory:{settings.topic_prefix}")
    written = record_workload(projected, 60)
    progress = project_once(projected)
    assert progress.applied == written and progress.dead_lettered == 0
    expected = fold(read_all(projected.bootstrap_servers, projected.events_topic, expect=written))
    with open_sink(projected.sink_url) as sink:
        assert_sink_matches(sink, expected)
    assert project_once(projected).applied == 0


def test_the_same_events_delivered_twice_apply_once(projected: Settings) -> None:
    written = record_workload(projected, 60)
    first = read_all(projected.bootstrap_servers, projected.events_topic, expect=written)
    # An application-level retry: the very same events produced again, later in the log.
    again = Producer(
        {"bootstrap.servers": projected.bootstrap_servers, "partitioner": "murmur2_random"}
    )
    for record in first:
        again.produce(projected.events_topic, record.value, record.key)
    assert again.flush(30) == 0
    progress = project_once(projected, batch_size=700)
    assert progress.applied == written
    assert progress.duplicates == written
    everything = read_all(projected.bootstrap_servers, projected.events_topic, expect=2 * written)
    assert len(everything) == 2 * written
    with open_sink(projected.sink_url) as sink:
        assert_sink_matches(sink, fold(everything))


def test_poison_records_go_to_the_dead_letter_topic_with_their_origin(
    projected: Settings,
) -> None:
    producer = Producer(
        {"bootstrap.servers": projected.bootstrap_servers, "partitioner": "murmur2_random"}
    )
    recorder = Recorder(projected)
    rng = random.Random(9)
    for n in range(10_000):
        recorder.user_message(f"conv-{n % 250}", f"message {n}")
        if n % 100 == 99:
            recorder.flush()
            poison = rng.choice([b"\xc3\x01" + rng.randbytes(30), b"{json: no}", b"\x00\x00\x00"])
            producer.produce(projected.events_topic, poison, f"conv-{n % 250}".encode())
            producer.flush(10)
    recorder.close()

    progress = project_once(projected, projections=[BUILT_IN["conversations"]()])
    assert progress.applied == 10_000
    assert progress.dead_lettered == 100

    topic = read_all(projected.bootstrap_servers, projected.events_topic, expect=10_100)
    poison_origins = {(r.partition, r.offset) for r in topic if decode_plain(r.value) is None}
    assert len(poison_origins) == 100
    letters = read_all(projected.bootstrap_servers, projected.dlq_topic, expect=100)
    assert len(letters) == 100
    origins = set()
    for letter in letters:
        headers = {k: v.decode() for k, v in letter.headers}
        assert headers[dl.ORIGIN_TOPIC] == projected.events_topic
        assert "cannot decode record at" in headers[dl.ERROR]
        assert headers[dl.ATTEMPTS] == "1"
        assert headers[dl.DEAD_LETTERED_AT].startswith("20")
        assert headers[dl.CONSUMER_GROUP] == "g"
        origin = (int(headers[dl.ORIGIN_PARTITION]), int(headers[dl.ORIGIN_OFFSET]))
        original = next(r for r in topic if (r.partition, r.offset) == origin)
        assert letter.value == original.value and letter.key == original.key
        origins.add(origin)
    assert origins == poison_origins
    with open_sink(projected.sink_url) as sink:
        assert sink.query("SELECT sum(turns) FROM agentlog_conversations")[0][0] == 10_000


def test_a_failing_handler_dead_letters_its_event_and_the_rest_apply(
    projected: Settings,
) -> None:
    written = record_workload(projected, 80)
    records = read_all(projected.bootstrap_servers, projected.events_topic, expect=written)
    sagas = [
        r for r in records if decode_plain(r.value)["payload"][0] == "agentlog.SagaStepStarted"
    ]
    assert sagas
    built_ins = [p() for p in BUILT_IN.values()]
    progress = project_once(projected, projections=[*built_ins, FailsOnRefunds()])
    assert progress.dead_lettered == len(sagas)
    assert progress.applied == written - len(sagas)
    letters = read_all(projected.bootstrap_servers, projected.dlq_topic, expect=len(sagas))
    for letter in letters:
        headers = {k: v.decode() for k, v in letter.headers}
        assert headers[dl.ATTEMPTS] == "3"
        assert headers[dl.ERROR].startswith("handler failed: ValueError: cannot handle saga")
    # The failed events changed nothing, not even in the projections that did not fail,
    # and every other event of their batches applied exactly once.
    saga_origins = {(r.partition, r.offset) for r in sagas}
    rest = [r for r in records if (r.partition, r.offset) not in saga_origins]
    with open_sink(projected.sink_url) as sink:
        assert_sink_matches(sink, fold(rest))


def test_once_stops_at_the_ends_seen_at_start_while_producers_keep_writing(
    projected: Settings,
) -> None:
    import threading
    import time

    with Recorder(projected) as recorder:
        for n in range(3000):
            recorder.user_message(f"conv-{n % 40}", f"before {n}")
    stop = threading.Event()

    def keep_writing() -> None:
        with Recorder(projected) as late:
            n = 0
            while not stop.is_set():
                late.user_message(f"conv-{n % 40}", f"during {n}")
                n += 1
                time.sleep(0.001)  # the scenario: a writer that keeps going, paced

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        with open_sink(projected.sink_url) as sink:
            runner = ProjectionRunner(
                projected, sink, [BUILT_IN["conversations"]()], group="g", batch_size=1000
            )
            finished: list = []
            projector = threading.Thread(target=lambda: finished.append(runner.run(once=True)))
            projector.start()
            projector.join(90)
            if projector.is_alive():
                runner.stop()
                projector.join(30)
            assert finished, "--once did not stop while producers kept writing"
    finally:
        stop.set()
        writer.join()
    progress = finished[0]
    # Everything up to the ends seen when each partition was first read, and no more
    # than the batches that reached them (a batch of 1,000 is applied whole).
    caught_up_to = sum(runner.targets.values())
    assert 3000 <= caught_up_to <= progress.applied < caught_up_to + 1000 * len(runner.targets)
