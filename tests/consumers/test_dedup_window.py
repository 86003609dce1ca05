"""Applied event ids are remembered for a window of event time, not forever."""

from __future__ import annotations

from datetime import timedelta

from confluent_kafka import Producer
from helpers.independent_fold import decode_plain
from helpers.kafka_python_reader import read_all

from agentlog.consumers import BUILT_IN, ProjectionRunner, open_sink
from agentlog.demo.simulation import SimulatedClock
from agentlog.producers import Recorder
from agentlog.settings import Settings


def test_the_window_setting_reads_durations_and_seconds(monkeypatch) -> None:
    assert Settings().dedup_window == timedelta(days=7)
    monkeypatch.setenv("AGENTLOG_DEDUP_WINDOW", "PT1H")
    assert Settings().dedup_window == timedelta(hours=1)
    monkeypatch.setenv("AGENTLOG_DEDUP_WINDOW", "90")
    assert Settings().dedup_window == timedelta(seconds=90)


def test_duplicates_inside_the_window_apply_once_and_the_id_table_stays_bounded(
    settings: Settings, sink_url: str
) -> None:
    """10 hours of event time, a one-hour window: a duplicate of an event half an hour
    old changes nothing; a duplicate of an event 9 hours old is applied again (its id
    was forgotten), and the sink remembers about one hour of ids, not ten."""
    settings = settings.with_overrides(sink=sink_url, dedup_window=timedelta(hours=1))
    clock = SimulatedClock()
    start = clock.now
    conversations = 30
    with Recorder(settings, clock_micros=clock) as recorder:
        for n in range(6000):  # one event every 6 s of event time, 10 hours
            clock.now = start + n * 6_000_000
            recorder.user_message(f"conv-{n % conversations}", f"message {n}")
    records = read_all(settings.bootstrap_servers, settings.events_topic, expect=6000)
    assert len(records) == 6000

    def message(n: int):
        return next(
            r for r in records if decode_plain(r.value)["payload"][1]["text"] == f"message {n}"
        )

    recent, old = message(5701), message(606)  # 9.5 hours and 1 hour in; conv-1 and conv-6
    again = Producer(
        {"bootstrap.servers": settings.bootstrap_servers, "partitioner": "murmur2_random"}
    )
    for record in (recent, old):  # produced twice: the same bytes, later in the log
        again.produce(settings.events_topic, record.value, record.key)
    assert again.flush(30) == 0

    with open_sink(sink_url) as sink:
        runner = ProjectionRunner(
            settings, sink, [BUILT_IN["conversations"]()], group="g", batch_size=200
        )
        progress = runner.run(once=True)
        assert progress.batches > 30
        assert progress.duplicates == 1  # the recent one
        assert progress.applied == 6001  # the old one applied again

        def turns(record) -> int:
            conversation = record.key.decode()
            return sink.query(
                "SELECT turns FROM agentlog_conversations WHERE conversation_id = "
                + sink.dialect.param("text"),
                [conversation],
            )[0][0]

        assert turns(recent) == 6000 // conversations
        assert turns(old) == 6000 // conversations + 1
        remembered = sink.query("SELECT count(*) FROM agentlog_applied_events")[0][0]
    # One hour is 600 events; forgetting runs each sixteenth of the window (38 events),
    # and the old duplicate came back after the last forgetting.
    assert 600 <= remembered <= 600 + 38 + 1 + 1
