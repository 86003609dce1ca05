"""A command reading Kafka gives up, with one line naming the broker, when the broker
goes away under it: `tail --follow` included (DESIGN.md: nothing waits forever)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from conftest import DevEngine
from helpers.cli import agentlog_process

from agentlog import devbroker
from agentlog.producers import Recorder
from agentlog.topics import create_topics


def test_tail_follow_ends_with_one_line_when_the_broker_dies(
    dev_broker_engine: DevEngine, tmp_path: Path
) -> None:
    state = dev_broker_engine.settings(tmp_path / "doomed")
    broker = devbroker.start(state)
    try:
        settings = state.with_overrides(bootstrap_servers=broker.bootstrap)
        create_topics(settings)
        with Recorder(settings) as recorder:
            recorder.user_message("conv-1", "before the broker dies")
        tail = agentlog_process(
            "--bootstrap",
            broker.bootstrap,
            "tail",
            "--follow",
            env={"AGENTLOG_STATE_DIR": str(tmp_path / "state"), "AGENTLOG_BROKER_LOST_S": "5"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert tail.stdout is not None
        assert "before the broker dies" in tail.stdout.readline()
    finally:
        devbroker.stop(state)
    started = time.monotonic()
    try:
        code = tail.wait(timeout=30)
    finally:
        if tail.poll() is None:
            tail.kill()
    waited = time.monotonic() - started
    err = tail.stderr.read() if tail.stderr else ""
    assert code == 1, err
    assert waited < 15
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert broker.bootstrap in lines[0]
