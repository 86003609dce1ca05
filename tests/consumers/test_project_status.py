"""`agentlog project status` shows the dead letters the projector wrote, beside the lag."""

from __future__ import annotations

from confluent_kafka import Producer
from helpers.cli import agentlog

from agentlog.producers import Recorder
from agentlog.settings import Settings


def test_status_counts_the_dead_letters_of_the_group(settings: Settings, tmp_path) -> None:
    with Recorder(settings) as recorder:
        recorder.user_message("conv-1", "fine")
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    for n in range(3):
        producer.produce(settings.events_topic, b"\xc3\x01not avro " + bytes([n]), b"conv-1")
    producer.flush(10)
    base = ("--bootstrap", str(settings.bootstrap_servers), "--topic-prefix", settings.topic_prefix)
    sink = f"duckdb:{tmp_path / 's.duckdb'}"
    run = agentlog(*base, "project", "run", "--once", "--sink", sink, state_dir=tmp_path)
    assert run.code == 0, run.err
    # Into a file or pipe (not a terminal): no progress line every second.
    progress = [line for line in run.err.splitlines() if line.startswith("applied ")]
    assert len(progress) <= 1, run.err
    status = agentlog(*base, "project", "status", "--sink", sink, state_dir=tmp_path)
    assert status.code == 0, status.err
    assert "total lag: 0 events" in status.out
    assert f"dead letters: 3 on {settings.dlq_topic}" in status.out
    other = agentlog(
        *base, "project", "status", "--sink", sink, "--group", "nobody", state_dir=tmp_path
    )
    assert f"dead letters: 0 on {settings.dlq_topic}" in other.out
