"""Crashes, kills and rebalances never apply an event twice or skip one."""

from __future__ import annotations

import signal
import subprocess
import uuid
from pathlib import Path

from helpers import wait_for
from helpers.cli import agentlog_process
from helpers.independent_fold import assert_sink_matches, fold
from helpers.kafka_python_reader import read_all
from helpers.workloads import record_workload

from agentlog.consumers import open_sink
from agentlog.settings import Settings
from agentlog.topics import create_topics

BUILT_INS = (
    "--projection",
    "conversations",
    "--projection",
    "tool_calls",
    "--projection",
    "conversation_index",
)


def projector(
    settings: Settings, *args: str, env: dict[str, str] | None = None, log: Path
) -> subprocess.Popen:
    return agentlog_process(
        "--bootstrap",
        settings.bootstrap_servers,
        "--topic-prefix",
        settings.topic_prefix,
        "--state-dir",
        str(settings.state_dir),
        "project",
        "run",
        "--sink",
        settings.sink_url,
        *args,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


def applied_offsets(settings: Settings, group: str) -> int:
    with open_sink(settings.sink_url) as sink:
        return sum(sink.stored_offsets(group, settings.events_topic).values())


def test_sigkill_mid_batch_then_restart_is_exact(
    settings: Settings, sink_url: str, tmp_path: Path
) -> None:
    settings = settings.with_overrides(sink=sink_url)
    written = record_workload(settings, 150)
    killed = projector(
        settings,
        *BUILT_INS,
        "--projection",
        "helpers.crash_projection:KillSelfMidBatch",
        "--batch-size",
        "300",
        "--group",
        "crashy",
        env={"AGENTLOG_TEST_KILL_AT": "1000"},
        log=tmp_path / "killed.log",
    )
    assert killed.wait(timeout=120) == -signal.SIGKILL, (tmp_path / "killed.log").read_text()
    # Batches before the 1000th event were committed; the one holding it died inside its
    # transaction.
    assert 0 < applied_offsets(settings, "crashy") < 1000

    restarted = projector(
        settings,
        *BUILT_INS,
        "--batch-size",
        "300",
        "--group",
        "crashy",
        "--once",
        log=tmp_path / "restarted.log",
    )
    assert restarted.wait(timeout=120) == 0, (tmp_path / "restarted.log").read_text()
    assert applied_offsets(settings, "crashy") == written
    expected = fold(read_all(settings.bootstrap_servers, settings.events_topic, expect=written))
    with open_sink(settings.sink_url) as sink:
        assert_sink_matches(sink, expected)


def test_three_projectors_on_postgres_one_killed_mid_stream(
    bootstrap: str, postgres_url: str, tmp_path: Path
) -> None:
    settings = Settings(
        bootstrap_servers=bootstrap,
        topic_prefix=f"g{uuid.uuid4().hex[:8]}.",
        partitions=6,
        state_dir=tmp_path / "state",
        sink=postgres_url,
    )
    create_topics(settings)
    written = record_workload(settings, 500)
    logs = [tmp_path / f"projector-{n}.log" for n in range(3)]
    group = (
        "--group",
        "trio",
        "--batch-size",
        "200",
        "--projection",
        "helpers.crash_projection:Slow",
    )
    processes = [projector(settings, *BUILT_INS, *group, log=log) for log in logs]
    try:
        wait_for(lambda: applied_offsets(settings, "trio") > written // 5, 120, "a fifth applied")
        assert applied_offsets(settings, "trio") < written, "too late to kill mid-stream"
        processes[1].send_signal(signal.SIGKILL)
        processes[1].wait(timeout=30)
        # The survivors take over the victim's partitions from the offsets in PostgreSQL.
        wait_for(lambda: applied_offsets(settings, "trio") == written, 240, "every event applied")
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
    for n in (0, 2):
        assert processes[n].wait(timeout=60) == 0, logs[n].read_text()
    expected = fold(read_all(bootstrap, settings.events_topic, expect=written))
    with open_sink(postgres_url) as sink:
        assert_sink_matches(sink, expected)
