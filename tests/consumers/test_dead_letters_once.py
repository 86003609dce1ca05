"""Dead letters carry a deterministic id and Kafka Connect's headers, and a batch retried
after its transaction rolled back does not send them again."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from confluent_kafka import Producer
from helpers.crash_projection import FailsOnRefunds
from helpers.independent_fold import decode_plain
from helpers.kafka_python_reader import read_all
from helpers.workloads import record_workload

from agentlog.consumers import BUILT_IN, ProjectionRunner, open_sink
from agentlog.consumers import dead_letters as dl
from agentlog.producers import Recorder
from agentlog.settings import Settings


class CommitLost(Exception):
    """Injected: the database lost the commit (a connection dropped at COMMIT)."""


def with_lost_commits(url: str):
    """A real sink of the URL whose every transaction fails as it would commit."""
    sink = open_sink(url)
    engine = type(sink)

    class LosesCommits(engine):  # type: ignore[misc, valid-type]
        @contextmanager
        def transaction(self, group: str, topic: str):
            with engine.transaction(self, group, topic) as tx:
                yield tx
                raise CommitLost("the commit was lost")

    sink.__class__ = LosesCommits
    return sink


def headers_of(letter) -> dict[str, str]:
    return {k: v.decode() for k, v in letter.headers}


def write_poison(settings: Settings, count: int) -> None:
    raw = Producer(
        {"bootstrap.servers": settings.bootstrap_servers, "partitioner": "murmur2_random"}
    )
    with Recorder(settings) as recorder:
        for n in range(count):
            recorder.user_message(f"conv-{n}", "before")
            recorder.flush()
            raw.produce(settings.events_topic, b"not an event %d" % n, f"conv-{n}".encode())
            raw.flush(10)
            recorder.user_message(f"conv-{n}", "after")


def run(settings: Settings, sink, projections=None) -> object:
    runner = ProjectionRunner(
        settings, sink, projections or [BUILT_IN["conversations"]()], group="g", batch_size=5000
    )
    return runner.run(once=True)


def test_dead_letters_carry_their_id_and_kafka_connects_headers(
    settings: Settings, tmp_path
) -> None:
    written = record_workload(settings, 40)
    write_poison(settings, 3)
    records = read_all(settings.bootstrap_servers, settings.events_topic, expect=written + 9)
    sagas = {
        (r.partition, r.offset)
        for r in records
        if (event := decode_plain(r.value)) and event["payload"][0] == "agentlog.SagaStepStarted"
    }
    poison = {(r.partition, r.offset) for r in records if decode_plain(r.value) is None}
    assert len(poison) == 3 and sagas
    with open_sink(f"duckdb:{tmp_path / 'sink.duckdb'}") as sink:
        progress = run(settings, sink, [BUILT_IN["conversations"](), FailsOnRefunds()])
    assert progress.dead_lettered == len(poison) + len(sagas)
    letters = read_all(
        settings.bootstrap_servers, settings.dlq_topic, expect=progress.dead_lettered
    )
    assert len(letters) == len(poison) + len(sagas)
    for letter in letters:
        headers = headers_of(letter)
        origin = (int(headers[dl.ORIGIN_PARTITION]), int(headers[dl.ORIGIN_OFFSET]))
        topic, partition, offset = settings.events_topic, *origin
        assert headers[dl.DEAD_LETTER_ID] == f"{topic}/{partition}/{offset}"
        assert headers[dl.CONNECT_TOPIC] == topic
        assert headers[dl.CONNECT_PARTITION] == str(partition)
        assert headers[dl.CONNECT_OFFSET] == str(offset)
        if origin in poison:
            assert headers[dl.CONNECT_EXCEPTION_CLASS] == "agentlog.errors.DecodeError"
            assert headers[dl.CONNECT_EXCEPTION_MESSAGE].startswith(
                f"cannot decode record at {topic}[{partition}]@{offset}: "
            )
        else:
            assert origin in sagas
            assert headers[dl.CONNECT_EXCEPTION_CLASS] == "ValueError"
            assert headers[dl.CONNECT_EXCEPTION_MESSAGE].startswith("cannot handle saga ")
            assert headers[dl.ERROR] == (
                f"handler failed: ValueError: {headers[dl.CONNECT_EXCEPTION_MESSAGE]}"
            )


def test_a_batch_retried_after_a_rollback_does_not_send_its_dead_letters_again(
    settings: Settings, sink_url: str
) -> None:
    write_poison(settings, 5)
    lossy = with_lost_commits(sink_url)
    with lossy, pytest.raises(CommitLost):
        run(settings, lossy)  # dead letters sent and acknowledged, then the batch rolled back
    # The first batch's letters: those of the records its first consume brought, which on
    # a loaded machine need not be every partition's (it fails at its first commit, so a
    # partition whose records came later is never read). Each was acknowledged before the
    # rollback: they are all on the topic now, none late.
    first = read_all(settings.bootstrap_servers, settings.dlq_topic)
    first_ids = {headers_of(letter)[dl.DEAD_LETTER_ID] for letter in first}
    assert len(first_ids) == len(first) <= 5
    with open_sink(sink_url) as sink:
        assert sink.stored_offsets("g", settings.events_topic) == {}
        progress = run(settings, sink)  # the retry
        assert progress.applied == 10 and progress.dead_lettered == 5
        assert sum(sink.stored_offsets("g", settings.events_topic).values()) == 15
    letters = read_all(settings.bootstrap_servers, settings.dlq_topic)
    ids = [headers_of(letter)[dl.DEAD_LETTER_ID] for letter in letters]
    # The retry sent only the letters the failed batch had not: none twice.
    assert len(ids) == len(set(ids)) == 5 and first_ids <= set(ids)
