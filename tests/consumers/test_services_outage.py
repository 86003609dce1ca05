"""Long-running services ride out a broker that goes away and comes back on its port:
they say so in one line, say when it answers again, and go on (Apache Kafka keeps its
log); a restarted Tansu has a new, empty log, which they refuse with one clear line
instead of mixing it in. Past AGENTLOG_BROKER_OUTAGE_TOLERANCE_S they exit naming the
cause. SIGTERM always stops them (closing is bounded)."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import DevEngine
from helpers import wait_for
from helpers.cli import agentlog_process

from agentlog import devbroker
from agentlog.analytics import archiver as archiver_module
from agentlog.analytics.archiver import Archiver
from agentlog.consumers import ProjectionRunner, open_sink
from agentlog.events import AgentMessage
from agentlog.producers import Recorder, ToolClient
from agentlog.reader import partition_offset, read_partitions
from agentlog.serde import decode_event
from agentlog.settings import Settings
from agentlog.topics import create_topics

OUTAGE_S = 15


def _record(settings: Settings, count: int, start: int = 0) -> None:
    with Recorder(settings, service="outage") as recorder:
        for n in range(start, start + count):
            recorder.user_message(f"conv-{n % 7}", f"turn {n}")


def _applied(log: Path) -> int:
    found = re.findall(r"applied ([\d,]+) events", log.read_text())
    return int(found[-1].replace(",", "")) if found else 0


def test_project_run_rides_out_a_broker_restart(
    dev_broker_engine: DevEngine, tmp_path: Path
) -> None:
    state = dev_broker_engine.settings(tmp_path / "broker")
    broker = devbroker.start(state)
    settings = Settings(
        bootstrap_servers=broker.bootstrap,
        topic_prefix="outage.",
        partitions=3,
        state_dir=tmp_path / "state",
    )
    log = tmp_path / "projector.log"
    projector = None
    settings.state_dir.mkdir()  # where the projector's DuckDB file goes
    try:
        create_topics(settings)
        _record(settings, 100)
        projector = agentlog_process(
            "--bootstrap",
            broker.bootstrap,
            "--topic-prefix",
            settings.topic_prefix,
            "--state-dir",
            str(settings.state_dir),
            "project",
            "run",
            # Short: before the fix, the outage itself ran out this bound ("stuck
            # rebalancing").
            env={"AGENTLOG_ASSIGNMENT_TIMEOUT_S": "8"},
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        wait_for(lambda: _applied(log) >= 100, 120, "the first 100 events applied")
        devbroker.stop(state)
        wait_for(lambda: "does not answer" in log.read_text(), 60, "the projector's outage line")
        time.sleep(OUTAGE_S)  # the outage itself: nothing to await but time
        assert projector.poll() is None, log.read_text()
        devbroker.start(state, port=broker.port)
        if not dev_broker_engine.capabilities.keeps_log_across_restart:
            # A new, empty log on the same address (its topics made again, as after
            # `dev up`): refused in one line, never mixed in.
            create_topics(settings)
            _record(settings, 10)
            assert projector.wait(timeout=120) == 1, log.read_text()
            errors = [line for line in log.read_text().splitlines() if line.startswith("error")]
            assert len(errors) == 1 and "restarted dev broker" in errors[0], log.read_text()
            assert "Traceback" not in log.read_text()
            return
        wait_for(lambda: "answers again" in log.read_text(), 120, "the projector's resume line")
        _record(settings, 50, start=100)
        wait_for(lambda: _applied(log) >= 150, 120, "the 50 events recorded after the outage")
        assert projector.poll() is None, log.read_text()
        projector.send_signal(signal.SIGTERM)
        assert projector.wait(timeout=60) == 0, log.read_text()
        assert "applied 150 events" in log.read_text().splitlines()[-1]
        assert "stuck rebalancing" not in log.read_text()
    finally:
        if projector is not None and projector.poll() is None:
            projector.kill()
        devbroker.stop(state, wipe=True)


def test_project_run_gives_up_past_the_tolerance_naming_the_cause(
    dev_broker_engine: DevEngine, tmp_path: Path
) -> None:
    state = dev_broker_engine.settings(tmp_path / "broker")
    broker = devbroker.start(state)
    settings = Settings(
        bootstrap_servers=broker.bootstrap,
        topic_prefix="gone.",
        partitions=3,
        state_dir=tmp_path / "state",
    )
    log = tmp_path / "projector.log"
    settings.state_dir.mkdir()  # where the projector's DuckDB file goes
    try:
        create_topics(settings)
        _record(settings, 10)
        projector = agentlog_process(
            "--bootstrap",
            broker.bootstrap,
            "--topic-prefix",
            settings.topic_prefix,
            "--state-dir",
            str(settings.state_dir),
            "project",
            "run",
            env={"AGENTLOG_BROKER_OUTAGE_TOLERANCE_S": "5"},
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        wait_for(lambda: _applied(log) >= 10, 120, "the events applied")
    finally:
        devbroker.stop(state, wipe=True)
    try:
        code = projector.wait(timeout=90)  # the tolerance, then a bounded close
    finally:
        if projector.poll() is None:
            projector.kill()
    text = log.read_text()
    assert code == 1, text
    error = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "no answer from Kafka" in error[0], text
    assert "giving up after 5s" in error[0] and "stuck rebalancing" not in text


def test_archive_run_survives_its_partition_check_inside_an_outage(
    dev_broker_engine: DevEngine, tmp_path: Path, monkeypatch
) -> None:
    if not dev_broker_engine.capabilities.keeps_log_across_restart:
        pytest.skip("a restarted Tansu has a new, empty log: nothing to ride out to")
    monkeypatch.setattr(archiver_module, "_PARTITION_CHECK_SECONDS", 1.0)
    state = dev_broker_engine.settings(tmp_path / "broker")
    broker = devbroker.start(state)
    settings = Settings(
        bootstrap_servers=broker.bootstrap,
        topic_prefix="archived.",
        partitions=3,
        state_dir=tmp_path / "state",
    )
    archiver = Archiver(settings, archive=tmp_path / "archive")
    failure: list[BaseException] = []

    def run() -> None:
        try:
            archiver.run()
        except BaseException as exc:  # handed to the test below
            failure.append(exc)

    thread = threading.Thread(target=run)
    try:
        create_topics(settings)
        _record(settings, 30)
        thread.start()
        wait_for(lambda: archiver.progress.archived >= 30 or bool(failure), 120, "30 archived")
        devbroker.stop(state)
        # Partition checks fall inside the outage; the archiver stays.
        time.sleep(OUTAGE_S)  # the outage itself: nothing to await but time
        assert thread.is_alive() and not failure, failure
        devbroker.start(state, port=broker.port)
        _record(settings, 20, start=30)
        wait_for(lambda: archiver.progress.archived >= 50 or bool(failure), 120, "50 archived")
        assert not failure, failure
    finally:
        archiver.stop()
        thread.join(60)
        devbroker.stop(state, wipe=True)
    assert not thread.is_alive()
    assert not failure, failure
    assert archiver.progress.archived == 50


def test_a_projector_reads_again_the_records_a_fetch_left_out(
    settings: Settings, tmp_path: Path
) -> None:
    """What Tansu 0.6 did to tool workers under load, handed to a projector on purpose:
    records 5..9 of a partition left out of what the consumer was handed. They are read
    again and applied in order, not passed over."""
    with Recorder(settings, service="gap") as recorder:
        for n in range(20):
            recorder.user_message("conv-gap", f"turn {n}")
    (first,) = list(read_partitions(settings, settings.events_topic))[:1]
    partition = partition_offset(first)[0]
    handed = list(read_partitions(settings, settings.events_topic, partitions=[partition]))
    assert len(handed) == 20
    with open_sink(f"duckdb:///{tmp_path / 'p.duckdb'}") as sink:
        runner = ProjectionRunner(settings, sink, [])
        runner.positions[partition] = None
        runner._sought(partition, 0)
        records = runner._records_of(handed[:5] + handed[10:])
        runner.consumer.close()
    assert [partition_offset(r)[1] for r in records] == list(range(len(handed)))


def _workers(settings: Settings, tool_dir: Path, logs: Path, env: dict[str, str]) -> dict:
    """`tools work` and `agents run` (the echo agent of trigger_agents.py) in processes of
    their own, each with its log: service name -> (process, log)."""
    common = ("--bootstrap", str(settings.bootstrap_servers))
    common += ("--topic-prefix", settings.topic_prefix, "--state-dir", str(settings.state_dir))
    commands = {
        "tools work": ("tools", "work", "helpers.tool_fixtures:tools", "--group", "outage-tools"),
        "agents run": ("agents", "run", "helpers.trigger_agents", "--group", "outage-agents")
        + ("--from", "earliest"),  # the first message may come before the group formed
    }
    running = {}
    for name, command in commands.items():
        log = logs / f"{name.replace(' ', '-')}.log"
        process = agentlog_process(
            *common,
            *command,
            env={"AGENTLOG_TEST_TOOL_DIR": str(tool_dir), **env},
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        running[name] = (process, log)
    return running


def _says(log: Path, words: str) -> Callable[[], bool]:
    return lambda: words in log.read_text()


def _a_call_and_an_echo(settings: Settings, n: int) -> None:
    """One tool call answered by the worker, one user message echoed by the agent."""
    with ToolClient(settings, timeout=120) as tools:
        assert tools.request(f"conv-{n}", "record_effect", {"n": n}).result(120)["n"] == n
    _record(settings, 1, start=n)

    def echoed() -> bool:
        replies = [
            event
            for event in map(
                decode_event, (m.value() for m in read_partitions(settings, settings.events_topic))
            )
            if isinstance(event.payload, AgentMessage)
        ]
        return any(reply.payload.text == f"you said: turn {n}" for reply in replies)

    wait_for(echoed, 120, f"the echo of turn {n}")


def test_tools_work_and_agents_run_ride_out_a_broker_restart(
    dev_broker_engine: DevEngine, tmp_path: Path
) -> None:
    """Both say in one line that Kafka does not answer and stay up through the outage. On
    Kafka (the same log) they say that it answers again and work on what comes after; a
    restarted Tansu has a new, empty log, which they refuse in one line, as a projector
    does."""
    state = dev_broker_engine.settings(tmp_path / "broker")
    broker = devbroker.start(state)
    settings = Settings(
        bootstrap_servers=broker.bootstrap,
        topic_prefix="workers.",
        partitions=3,
        state_dir=tmp_path / "state",
        spool=False,
    )
    tool_dir = tmp_path / "tools"
    tool_dir.mkdir()
    running: dict = {}
    try:
        create_topics(settings)
        running = _workers(settings, tool_dir, tmp_path, {})
        _a_call_and_an_echo(settings, 1)
        devbroker.stop(state)
        for name, (_process, log) in running.items():
            wait_for(_says(log, "does not answer"), 60, f"{name}'s outage line")
        time.sleep(OUTAGE_S)  # the outage itself: nothing to await but time
        for name, (process, log) in running.items():
            assert process.poll() is None, f"{name} exited: {log.read_text()}"
        devbroker.start(state, port=broker.port)
        if not dev_broker_engine.capabilities.keeps_log_across_restart:
            # A new, empty log on the same address (its topics made again, as after `dev
            # up`): refused in one line at once, not worked on with a producer the new
            # broker does not know (its records timed out two minutes later, blamed on
            # Kafka).
            create_topics(settings)
            for name, (process, log) in running.items():
                assert process.wait(timeout=120) == 1, log.read_text()
                errors = [line for line in log.read_text().splitlines() if line.startswith("error")]
                assert len(errors) == 1 and "restarted dev broker" in errors[0], log.read_text()
                assert "Traceback" not in log.read_text(), f"{name}: {log.read_text()}"
            return
        for name, (_process, log) in running.items():
            wait_for(_says(log, "answers again"), 120, f"{name}'s resume line")
        _a_call_and_an_echo(settings, 2)
        for name, (process, log) in running.items():
            text = log.read_text()
            assert process.poll() is None, f"{name} exited: {text}"
            # A line per outage, not per retry (a broker starting up may drop connections
            # once more: a second outage, briefly).
            assert 1 <= text.count("does not answer") <= 2, text
            assert "Traceback" not in text, text
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=60) == 0, log.read_text()
    finally:
        for process, _log in running.values():
            if process.poll() is None:
                process.kill()
        devbroker.stop(state, wipe=True)


def test_tools_work_and_agents_run_give_up_past_the_tolerance_naming_the_cause(
    dev_broker_engine: DevEngine, tmp_path: Path
) -> None:
    state = dev_broker_engine.settings(tmp_path / "broker")
    broker = devbroker.start(state)
    settings = Settings(
        bootstrap_servers=broker.bootstrap,
        topic_prefix="gone.",
        partitions=3,
        state_dir=tmp_path / "state",
        spool=False,
    )
    tool_dir = tmp_path / "tools"
    tool_dir.mkdir()
    running: dict = {}
    try:
        create_topics(settings)
        running = _workers(
            settings, tool_dir, tmp_path, {"AGENTLOG_BROKER_OUTAGE_TOLERANCE_S": "5"}
        )
        _a_call_and_an_echo(settings, 1)
    finally:
        devbroker.stop(state, wipe=True)
    try:
        # The tolerance, then a bounded close.
        codes = {name: process.wait(timeout=90) for name, (process, _log) in running.items()}
    finally:
        for process, _log in running.values():
            if process.poll() is None:
                process.kill()
    for name, (_process, log) in running.items():
        text = log.read_text()
        assert codes[name] == 1, text
        errors = [line for line in text.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "no answer from Kafka" in errors[0], text
        assert "giving up after 5s" in errors[0] and "Traceback" not in text, text
