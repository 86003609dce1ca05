"""The recorder without a spool, when Kafka is away or its producer dies: the agent is
never stalled beyond max_block_ms, nothing queued is dropped at exit unsaid, and a dead
or stuck producer is replaced rather than leaving the recorder dead."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from helpers.cli import TESTS, clean_environment
from helpers.kafka_limits import incompressible, limit_record_size
from helpers.kafka_python_reader import read_all

from agentlog import devbroker
from agentlog.errors import AgentlogError, BrokerUnavailable, UndeliveredEvent
from agentlog.producers import AsyncRecorder, Recorder
from agentlog.serde import decode_event
from agentlog.settings import Settings
from agentlog.topics import create_topics

SMALL_QUEUE = {"queue.buffering.max.messages": 100}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _nobody_listening(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(
        bootstrap_servers=f"127.0.0.1:{_free_port()}",
        topic_prefix="absent.",
        state_dir=tmp_path / "state",
        delivery_timeout_ms=5000,
        exit_flush_timeout_ms=200,
        spool=False,  # what happens without the spool
        **overrides,
    )


def test_a_full_local_queue_costs_the_agent_at_most_max_block_ms(tmp_path: Path) -> None:
    failures: list[UndeliveredEvent] = []
    settings = _nobody_listening(tmp_path, max_block_ms=200)
    recorder = Recorder(settings, on_error=failures.append, producer_config=SMALL_QUEUE)
    durations = []
    for n in range(3000):
        started = time.perf_counter()
        recorder.user_message(f"conv-{n % 10}", f"turn {n}")
        durations.append(time.perf_counter() - started)
    assert max(durations) < 0.2 + 0.3
    # At most one wait per 1000 events while the queue stays full.
    assert sum(durations) < 4 * 0.2 + 1.5
    assert len(failures) >= 2800
    assert "stayed full for 200 ms (max_block_ms)" in failures[0].error
    assert decode_event(failures[-1].value).payload.text == "turn 2999"
    with pytest.raises(BrokerUnavailable, match="100 event\\(s\\) still waiting"):
        recorder.close(timeout=0.2)
    recorder._wire.close_at_exit()  # what interpreter exit would do: report the 100


def test_the_async_recorder_yields_and_gives_up_after_max_block_ms(tmp_path: Path) -> None:
    failures: list[UndeliveredEvent] = []
    settings = _nobody_listening(tmp_path, max_block_ms=200)

    async def agent() -> list[float]:
        recorder = AsyncRecorder(settings, on_error=failures.append, producer_config=SMALL_QUEUE)
        durations = []
        for n in range(1500):
            started = time.perf_counter()
            await recorder.user_message("conv-1", f"turn {n}")
            durations.append(time.perf_counter() - started)
        recorder._wire.close_at_exit()
        return durations

    durations = asyncio.run(agent())
    assert max(durations) < 0.2 + 0.3
    assert sum(durations) < 3 * 0.2 + 1.5
    assert len(failures) >= 1400


def _agent(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TESTS / "helpers" / "recording_agent.py"), *args],
        env=clean_environment({"AGENTLOG_SPOOL": "false", **env}),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def test_exit_without_close_delivers_what_is_queued(settings: Settings) -> None:
    env = {
        "AGENTLOG_BOOTSTRAP_SERVERS": str(settings.bootstrap_servers),
        "AGENTLOG_TOPIC_PREFIX": settings.topic_prefix,
        "AGENTLOG_STATE_DIR": str(settings.state_dir),
    }
    done = _agent(env, "--count", "100", "--no-close")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    records = read_all(str(settings.bootstrap_servers), settings.events_topic, expect=100)
    texts = sorted(int(decode_event(r.value).payload.text.split()[1]) for r in records)
    assert texts == list(range(100))


@pytest.mark.parametrize("on_error", [True, False])
def test_exit_with_kafka_away_says_what_is_left_within_the_bound(
    tmp_path: Path, on_error: bool
) -> None:
    port = _free_port()
    env = {
        "AGENTLOG_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
        "AGENTLOG_STATE_DIR": str(tmp_path),
        "AGENTLOG_EXIT_FLUSH_TIMEOUT_MS": "1000",
    }
    started = time.monotonic()
    done = _agent(env, "--count", "100", "--no-close", *(["--on-error"] if on_error else []))
    assert time.monotonic() - started < 20
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    said = [line for line in done.stderr.splitlines() if line.startswith("agentlog: ")]
    assert said == [
        f"agentlog: 100 event(s) were not delivered to Kafka at 127.0.0.1:{port} (waited 1s "
        "at interpreter exit): "
        + (
            "100 passed to on_error"
            if on_error
            else "100 lost (pass on_error to the recorder to keep them, or leave the spool "
            "on: AGENTLOG_SPOOL=true)"
        )
    ]
    if on_error:
        assert "on_error received 100 event(s)" in done.stdout


def _private_broker(engine, tmp_path: Path) -> tuple[Settings, Settings, int]:
    """(dev broker state, recorder settings on its fresh topics, port)."""
    state = engine.settings(tmp_path / "broker")
    record = devbroker.start(state)
    settings = Settings(
        bootstrap_servers=record.bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
        partitions=3,
        state_dir=tmp_path / "state",
        delivery_timeout_ms=3000,
        exit_flush_timeout_ms=500,
        spool=False,  # the producer replaced, not the spool's shipper
    )
    create_topics(settings)
    return state, settings, record.port


def test_a_broker_that_forgot_the_producer_does_not_leave_the_recorder_stuck(
    dev_broker_engine, tmp_path: Path
) -> None:
    """A broker restarted without its log (Tansu always; Kafka wiped) no longer knows the
    producer id; librdkafka then retries the same batch until it times out, forever."""
    state, settings, port = _private_broker(dev_broker_engine, tmp_path)
    failures: list[UndeliveredEvent] = []
    recorder = Recorder(settings, on_error=failures.append)
    try:
        recorder.user_message("conv-1", "before the restart")
        recorder.flush(timeout=10)
        devbroker.stop(state, wipe=True)
        devbroker.start(state, port=port)
        create_topics(settings)
        first = recorder.user_message("conv-1", "right after the restart")
        try:
            recorder.flush(timeout=10)
        except AgentlogError:
            pass
        second = recorder.user_message("conv-1", "and then")
        recorder.flush(timeout=10)
        on_topic = {
            decode_event(r.value).event_id
            for r in read_all(str(settings.bootstrap_servers), settings.events_topic, expect=1)
        }
        assert second in on_topic
        # The first one is on the topic or was reported: never dropped.
        assert first in on_topic | {decode_event(f.value).event_id for f in failures}
    finally:
        recorder.close(timeout=1)
        devbroker.stop(state, wipe=True)


def _kafka_engine_only(engine) -> None:
    if not engine.capabilities.enforces_max_message_bytes:
        pytest.skip("Tansu does not enforce a topic's max.message.bytes")


def test_a_record_the_broker_refuses_as_too_large_is_reported_with_the_limit(
    dev_broker_engine, tmp_path: Path
) -> None:
    _kafka_engine_only(dev_broker_engine)
    state, settings, _ = _private_broker(dev_broker_engine, tmp_path)
    try:
        limit_record_size(settings, 20_000)
        failures: list[UndeliveredEvent] = []
        recorder = Recorder(settings, on_error=failures.append)
        big = recorder.agent_message("conv-1", "writer", incompressible(50_000))
        recorder.flush(timeout=10)
        small = recorder.user_message("conv-1", "small")
        recorder.close(timeout=10)
        assert [decode_event(f.value).event_id for f in failures] == [big]
        assert "as too large for the topic" in failures[0].error
        assert "max.message.bytes" in failures[0].error
        on_topic = read_all(str(settings.bootstrap_servers), settings.events_topic, expect=1)
        assert [decode_event(r.value).event_id for r in on_topic] == [small]
    finally:
        devbroker.stop(state, wipe=True)


def test_a_fatal_producer_error_is_broker_unavailable_and_recording_goes_on(
    dev_broker_engine, tmp_path: Path
) -> None:
    """With enable.gapless.guarantee, librdkafka declares a record refused by the broker
    fatal: the producer is dead. The recorder says so and carries on with a new one."""
    _kafka_engine_only(dev_broker_engine)
    state, settings, _ = _private_broker(dev_broker_engine, tmp_path)
    try:
        limit_record_size(settings, 20_000)
        failures: list[UndeliveredEvent] = []
        recorder = Recorder(
            settings,
            on_error=failures.append,
            producer_config={"enable.gapless.guarantee": True},
        )
        recorder.agent_message("conv-1", "writer", incompressible(50_000))
        with pytest.raises(BrokerUnavailable, match="fatal error .* a new producer took over"):
            recorder.flush(timeout=10)
        after = [recorder.user_message("conv-after", f"after {k}") for k in range(10)]
        recorder.flush(timeout=10)
        on_topic = read_all(str(settings.bootstrap_servers), settings.events_topic, expect=10)
        assert [decode_event(r.value).event_id for r in on_topic] == after
        assert len(failures) == 1 and "too large" in failures[0].error
        recorder.close(timeout=10)
    finally:
        devbroker.stop(state, wipe=True)
