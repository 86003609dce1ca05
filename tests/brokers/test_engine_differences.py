"""Where Tansu and Apache Kafka answer differently (DESIGN.md, "Kafka, real and
embedded"), agentlog must be right on both: these tests pin what each engine does and
show that agentlog's own answers do not depend on the difference."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import NewTopic
from helpers import Capabilities, wait_for
from helpers.sample_events import sample_events

from agentlog.consumers import BUILT_IN, ProjectionRunner, open_sink
from agentlog.kafka_config import admin_client, reader_config
from agentlog.producers import Recorder
from agentlog.reader import partition_ends, read_partitions
from agentlog.serde import encode_event
from agentlog.settings import Settings


def _record(settings: Settings, conversations: int, per_conversation: int) -> int:
    with Recorder(settings, service="engines") as recorder:
        for c in range(conversations):
            for n in range(per_conversation):
                recorder.user_message(f"conv-{c}", f"message {n}")
    return conversations * per_conversation


def _written_per_partition(settings: Settings) -> dict[int, int]:
    counts: dict[int, int] = {}
    for message in read_partitions(settings, settings.events_topic):
        counts[message.partition()] = counts.get(message.partition(), 0) + 1
    return counts


def test_partition_ends_are_right_after_batched_produce(
    settings: Settings, capabilities: Capabilities
) -> None:
    written = _record(settings, conversations=30, per_conversation=100)
    counts = _written_per_partition(settings)
    assert sum(counts.values()) == written
    ends = partition_ends(settings, settings.events_topic)
    assert {p: ends[p] for p in counts} == counts
    # ListOffsets itself: right on Kafka; Tansu's answer is the reason agentlog never asks.
    consumer = Consumer(reader_config(settings))
    try:
        listed = {
            p: consumer.get_watermark_offsets(TopicPartition(settings.events_topic, p), timeout=10)[
                1
            ]
            for p in counts
        }
    finally:
        consumer.close()
    if capabilities.list_offsets_correct:
        assert listed == counts


def _project(settings: Settings) -> int:
    with open_sink(settings.sink_url) as sink:
        runner = ProjectionRunner(settings, sink, [p() for p in BUILT_IN.values()], group="g")
        return runner.run(once=True).applied


def test_aborted_transactions(settings: Settings, capabilities: Capabilities, tmp_path) -> None:
    """Kafka hides aborted records from read_committed consumers; Tansu delivers them.
    agentlog's recorders never write transactions, so this only concerns foreign
    producers writing to the events topic; the projector reads read_committed."""
    projected = settings.with_overrides(sink=f"duckdb:{tmp_path / 'p.duckdb'}")
    committed = _record(projected, conversations=3, per_conversation=5)
    aborted = sample_events("conv-0")[1]  # a fresh event id, never committed
    transactional = Producer(
        {
            "bootstrap.servers": projected.bootstrap_servers,
            "transactional.id": f"engines-{time.time_ns()}",
            "partitioner": "murmur2_random",
        }
    )
    transactional.init_transactions(30)
    transactional.begin_transaction()
    transactional.produce(projected.events_topic, key=b"conv-0", value=encode_event(aborted))
    transactional.flush(30)
    transactional.abort_transaction(30)
    applied = _project(projected)
    if capabilities.read_committed:
        assert applied == committed
    else:
        assert applied == committed + 1, "Tansu delivers aborted records under read_committed"
    # Whatever the engine, the projector ends caught up: lag 0 past the abort marker.
    assert _project(projected) == 0


def test_retention_deletes_records_on_kafka_only(
    bootstrap: str, capabilities: Capabilities
) -> None:
    settings = Settings(bootstrap_servers=bootstrap, topic_prefix=f"ret{time.time_ns()}.")
    topic = f"{settings.topic_prefix}short"
    admin = admin_client(settings)
    futures = admin.create_topics(
        [
            NewTopic(
                topic,
                1,
                1,
                config={"retention.ms": "1000", "segment.ms": "500", "segment.bytes": "1048576"},
            )
        ]
    )
    for future in futures.values():
        future.result(30)
    producer = Producer({"bootstrap.servers": bootstrap})
    for n in range(10):
        producer.produce(topic, value=f"old {n}".encode())
    producer.flush(30)
    # The scenario: the records age past retention.ms (1 s); then a new segment rolls.
    time.sleep(1.5)
    producer.produce(topic, value=b"new")
    producer.flush(30)

    def values() -> list[bytes]:
        # agentlog's reader starts at the log start whatever retention removed, never hangs.
        return [m.value() for m in read_partitions(settings, topic, idle_timeout=10)]

    if capabilities.enforces_retention:
        # Kafka enforces retention: the old records are deleted.
        wait_for(
            lambda: not any(v.startswith(b"old") for v in values()),
            30,
            "retention to delete the old records",
        )
        assert set(values()) <= {b"new"}
    else:
        assert len(values()) == 11, "Tansu stores retention.ms but does not enforce it"
