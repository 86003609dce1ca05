"""Partitions added to the events topic move conversations to other partitions: the
projector stops with guidance instead of letting two members update one conversation.

Adding partitions is Kafka only: Tansu 0.6 has no CreatePartitions (KIP-195), so its
partition count cannot change."""

from __future__ import annotations

import signal
import threading
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import NewPartitions
from helpers import Capabilities, wait_for
from helpers.cli import agentlog
from helpers.independent_fold import assert_sink_matches, fold
from helpers.kafka_python_reader import read_all
from helpers.workloads import project_once
from test_crash_recovery import BUILT_INS, applied_offsets, projector

from agentlog.consumers import open_sink
from agentlog.errors import PartitionsChanged
from agentlog.kafka_config import admin_client
from agentlog.producers import Recorder
from agentlog.serde import decode_event, encode_event
from agentlog.settings import Settings
from agentlog.topics import create_topics


@pytest.fixture
def kafka_only(capabilities: Capabilities) -> None:
    if not capabilities.adds_partitions:
        pytest.skip("Tansu 0.6 cannot add partitions to a topic (no CreatePartitions)")


def add_partitions(settings: Settings, total: int) -> None:
    topic = settings.events_topic
    admin = admin_client(settings)  # kept alive until the request is answered
    admin.create_partitions([NewPartitions(topic, total)])[topic].result()


def talk(settings: Settings, conversations: range, messages: int, label: str) -> None:
    """A new recorder (it learns the partition count as it starts) writing user messages."""
    with Recorder(settings) as recorder:
        for n in range(messages):
            for c in conversations:
                recorder.user_message(f"conv-{c}", f"{label} {n}")


def test_records_placed_by_another_partitioner_are_not_taken_for_a_change(
    settings: Settings, tmp_path: Path
) -> None:
    """librdkafka's default partitioner (CRC32) puts keys elsewhere than murmur2 does;
    with the partition count unchanged, that is no reason to stop."""
    projected = settings.with_overrides(sink=f"duckdb:{tmp_path / 'sink.duckdb'}")
    talk(projected, range(10), 2, "murmur2")
    records = read_all(projected.bootstrap_servers, projected.events_topic, expect=20)
    crc32 = Producer({"bootstrap.servers": projected.bootstrap_servers})
    for _ in range(30):
        for record in records:
            again = encode_event(
                decode_event(record.value).model_copy(update={"event_id": str(uuid.uuid4())})
            )
            crc32.produce(projected.events_topic, again, record.key)
    assert crc32.flush(30) == 0
    progress = project_once(projected, batch_size=100)
    assert progress.applied == 20 * 31


def test_added_partitions_stop_the_projector_for_good(
    settings: Settings, tmp_path: Path, kafka_only: None
) -> None:
    projected = settings.with_overrides(sink=f"duckdb:{tmp_path / 'sink.duckdb'}")
    talk(projected, range(30), 3, "before")
    assert project_once(projected).applied == 90
    with open_sink(projected.sink_url) as sink:
        offsets = sink.stored_offsets("g", projected.events_topic)
    add_partitions(projected, 5)
    talk(projected, range(30), 3, "after")
    guidance = r"went from 3 to 5 partitions since .* conversations moved partition"
    with pytest.raises(PartitionsChanged, match=guidance):
        project_once(projected)
    with open_sink(projected.sink_url) as sink:
        assert sink.stored_offsets("g", projected.events_topic) == offsets
        assert sink.stored_log("g", projected.events_topic).refused == (
            f"{projected.events_topic} went from 3 to 5 partitions"
        )
    run = agentlog(
        "--bootstrap",
        projected.bootstrap_servers,
        "--topic-prefix",
        projected.topic_prefix,
        "project",
        "run",
        "--once",
        "--group",
        "g",
        "--sink",
        projected.sink_url,
        state_dir=tmp_path,
    )
    assert run.code == 1
    line = run.err.strip().splitlines()[-1]
    assert line.startswith("error: ") and "went from 3 to 5 partitions" in line
    assert "fresh sink" in line


def test_running_members_stop_before_two_of_them_update_one_conversation(
    bootstrap: str, postgres_url: str, tmp_path: Path, kafka_only: None
) -> None:
    """The probe of the issue: two members on PostgreSQL while partitions are added and
    producers move on to them. Both stop with guidance, and the sink holds exactly the
    fold of what its offsets say was applied: no update lost."""
    settings = Settings(
        bootstrap_servers=bootstrap,
        topic_prefix=f"pc{uuid.uuid4().hex[:8]}.",
        partitions=4,
        state_dir=tmp_path / "state",
        sink=postgres_url,
    )
    create_topics(settings)
    conversations = range(120)
    talk(settings, conversations, 20, "before")
    logs = [tmp_path / f"member-{n}.log" for n in range(2)]
    group = (
        "--group",
        "pair",
        "--batch-size",
        "200",
        "--projection",
        "helpers.crash_projection:Slow",
    )
    members = [projector(settings, *BUILT_INS, *group, log=log) for log in logs]
    stop_writing = threading.Event()

    def keep_talking() -> None:
        for n in range(100):
            if stop_writing.is_set():
                return
            talk(settings, conversations, 1, f"after {n}")

    writer = threading.Thread(target=keep_talking)
    try:
        wait_for(lambda: applied_offsets(settings, "pair") >= 600, 120, "600 events applied")
        add_partitions(settings, 6)
        writer.start()
        for member, log in zip(members, logs, strict=True):
            assert member.wait(timeout=90) == 1, log.read_text()
    finally:
        stop_writing.set()
        for member in members:
            if member.poll() is None:
                member.send_signal(signal.SIGKILL)
        if writer.is_alive():
            writer.join(timeout=60)
    for log in logs:
        line = log.read_text().strip().splitlines()[-1]
        assert line.startswith("error: "), line
        assert "went from 4 to 6 partitions" in line and "fresh sink" in line
    with open_sink(postgres_url) as sink:
        applied = sink.stored_offsets("pair", settings.events_topic)
        assert set(applied) <= set(range(4))
        records = read_all(bootstrap, settings.events_topic)
        assert_sink_matches(
            sink, fold([r for r in records if r.offset < applied.get(r.partition, 0)])
        )
