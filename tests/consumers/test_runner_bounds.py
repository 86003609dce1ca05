"""No unbounded waits: `project run --once` and `project status` fail in seconds, with
one line, when they cannot work; lag is never claimed where it is not known."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from helpers import Capabilities, wait_for
from helpers.cli import agentlog
from helpers.sample_events import sample_events
from helpers.workloads import project_once

from agentlog.consumers import open_sink
from agentlog.kafka_config import admin_client
from agentlog.producers import Recorder
from agentlog.reader import partition_ends
from agentlog.serde import encode_event
from agentlog.settings import Settings
from agentlog.topics import create_topics


def run_and_time(*args: str, state_dir: Path, env: dict[str, str] | None = None, timeout=90):
    started = time.monotonic()
    run = agentlog(*args, state_dir=state_dir, env=env, timeout=timeout)
    return run, time.monotonic() - started


def error_line(err: str) -> str:
    """The one error line, last on stderr (progress lines may come before it)."""
    lines = err.strip().splitlines()
    assert sum(line.startswith("error: ") for line in lines) == 1, err
    assert lines[-1].startswith("error: "), err
    return lines[-1]


def topic_args(settings: Settings, *args: str) -> list[str]:
    return [
        "--bootstrap",
        settings.bootstrap_servers,
        "--topic-prefix",
        settings.topic_prefix,
        *args,
    ]


@pytest.fixture
def duckdb_sink(tmp_path: Path) -> str:
    url = f"duckdb:{tmp_path / 'sink.duckdb'}"
    open_sink(url).close()  # exists, so `status` gets as far as Kafka
    return url


# Waits out a client timeout against an address where nothing answers: a broker test.
@pytest.mark.kafka
@pytest.mark.parametrize("command", [("run", "--once"), ("status",)])
def test_a_broker_that_does_not_answer_fails_in_seconds(command, duckdb_sink, tmp_path) -> None:
    run, took = run_and_time(
        "--bootstrap", "127.0.0.1:1", "project", *command, "--sink", duckdb_sink, state_dir=tmp_path
    )
    assert run.code == 1 and took < 20
    assert error_line(run.err).startswith("error: Kafka at 127.0.0.1:1 did not answer")


@pytest.mark.parametrize("command", [("run", "--once"), ("status",)])
@pytest.mark.parametrize("address", ["nonsense", "127.0.0.1:notaport", "127.0.0.1:9092,:9"])
def test_a_malformed_broker_address_is_named(command, address, duckdb_sink, tmp_path) -> None:
    run, took = run_and_time(
        "--bootstrap", address, "project", *command, "--sink", duckdb_sink, state_dir=tmp_path
    )
    assert run.code == 1 and took < 10
    assert error_line(run.err).startswith(f"error: bootstrap servers {address!r}: ")
    assert "is not HOST:PORT" in run.err


@pytest.mark.parametrize("command", [("run", "--once"), ("status",)])
def test_a_missing_topic_fails_in_seconds(command, bootstrap, duckdb_sink, tmp_path) -> None:
    run, took = run_and_time(
        "--bootstrap",
        bootstrap,
        "--topic-prefix",
        "never-created.",
        "project",
        *command,
        "--sink",
        duckdb_sink,
        state_dir=tmp_path,
    )
    assert run.code == 1 and took < 20
    assert error_line(run.err) == (
        "error: topic never-created.events does not exist: run `agentlog topics create`"
    )


def test_a_group_stuck_rebalancing_fails_in_seconds_and_never_claims_lag_0(
    settings: Settings, duckdb_sink: str, tmp_path: Path
) -> None:
    """A member that joined and stopped polling (as one killed while joining looks to
    the group coordinator) holds every rebalance until its poll interval runs out."""
    assigned = threading.Event()
    holder = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": "stuck",
            "session.timeout.ms": 6000,
            "max.poll.interval.ms": 300_000,
        }
    )
    holder.subscribe([settings.events_topic], on_assign=lambda *_: assigned.set())
    deadline = time.monotonic() + 60
    while not assigned.is_set() and time.monotonic() < deadline:
        holder.poll(0.2)
    assert assigned.is_set()
    try:
        run, took = run_and_time(
            *topic_args(settings, "project", "run", "--once", "--group", "stuck"),
            "--sink",
            duckdb_sink,
            # The status line drawn (into a log it comes only a minute in): what it shows
            # while unassigned is what the test reads.
            "--progress",
            state_dir=tmp_path,
            env={"AGENTLOG_ASSIGNMENT_TIMEOUT_S": "5"},
        )
    finally:
        threading.Thread(target=holder.close, daemon=True).start()
    assert run.code == 1 and took < 40, run.err
    # (The error follows the drawn line's erasure on the same line.)
    assert "error: consumer group stuck assigned this member no partitions" in run.err
    assert "lag ?" in run.err and "lag 0" not in run.err, run.err


def test_lag_reaches_0_when_partitions_end_in_a_transaction_marker(
    settings: Settings, duckdb_sink: str, tmp_path: Path
) -> None:
    producer = Producer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "transactional.id": f"tx-{uuid.uuid4().hex[:8]}",
            "partitioner": "murmur2_random",
        }
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    written = 0
    for n in range(12):
        for event in sample_events(f"conv-{n}"):
            unique = event.model_copy(update={"event_id": str(uuid.uuid4())})
            producer.produce(settings.events_topic, encode_event(unique), f"conv-{n}".encode())
            written += 1
    producer.commit_transaction(30)  # every partition now ends in a commit marker
    projected = settings.with_overrides(sink=duckdb_sink)
    progress = project_once(projected)
    assert progress.applied == written
    assert progress.lag == 0
    ends = partition_ends(settings, settings.events_topic)
    with open_sink(duckdb_sink) as sink:
        assert sink.stored_offsets("g", settings.events_topic) == ends
    status = agentlog(
        *topic_args(settings, "project", "status", "--group", "g", "--sink", duckdb_sink),
        state_dir=tmp_path,
    )
    assert status.code == 0 and "total lag: 0 events" in status.out, status.out


def test_dead_letters_the_topic_does_not_take_stop_the_batch_in_seconds(
    settings: Settings, capabilities: Capabilities, duckdb_sink: str, tmp_path: Path
) -> None:
    if not capabilities.refuses_missing_topics:
        pytest.skip("Tansu creates a missing topic on first produce: its DLQ cannot refuse")
    with Recorder(settings) as recorder:
        for n in range(20):
            recorder.user_message("conv-1", f"message {n}")
    raw = Producer(
        {"bootstrap.servers": settings.bootstrap_servers, "partitioner": "murmur2_random"}
    )
    raw.produce(settings.events_topic, b"not an event", b"conv-1")
    assert raw.flush(10) == 0
    admin = admin_client(settings)
    admin.delete_topics([settings.dlq_topic], request_timeout=30)[settings.dlq_topic].result()
    command = topic_args(settings, "project", "run", "--once", "--sink", duckdb_sink)
    run, took = run_and_time(
        *command, state_dir=tmp_path, env={"AGENTLOG_DEAD_LETTER_TIMEOUT_S": "3"}
    )
    assert run.code == 1 and took < 25, run.err
    line = error_line(run.err)
    assert f"{settings.dlq_topic} did not take 1 dead letter(s)" in line
    assert "the batch was rolled back, so nothing is lost, and the projector stopped" in line
    with open_sink(duckdb_sink) as sink:
        assert sum(sink.stored_offsets("agentlog-projector", settings.events_topic).values()) == 0

    def created() -> bool:
        try:
            return create_topics(settings)[settings.dlq_topic] == "created"
        except Exception:  # Kafka deletes asynchronously: creating may fail for a moment
            return False

    wait_for(created, 60, f"{settings.dlq_topic} to be created again")
    again = agentlog(*command, state_dir=tmp_path)
    assert again.code == 0, again.err
    assert "applied 20 events" in again.out and "1 dead-lettered" in again.out
