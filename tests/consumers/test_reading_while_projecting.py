"""People can look at a DuckDB sink while `project run` holds it: the projector
publishes read snapshots, and `conversations list` / `project status` read the latest."""

from __future__ import annotations

import signal
import subprocess

from helpers import wait_for
from helpers.cli import agentlog, agentlog_process

from agentlog.producers import Recorder
from agentlog.settings import Settings


def _record(settings: Settings, first: int, count: int) -> None:
    with Recorder(settings) as recorder:
        for n in range(first, first + count):
            recorder.start_conversation(f"conv-{n}", channel="web_chat", user_id="u")
            recorder.user_message(f"conv-{n}", "hello")


def test_list_and_status_answer_while_the_projector_runs(settings: Settings, tmp_path) -> None:
    sink = f"duckdb:{tmp_path / 'live.duckdb'}"
    base = ("--bootstrap", settings.bootstrap_servers, "--topic-prefix", settings.topic_prefix)
    _record(settings, 0, 20)
    projector = agentlog_process(
        *base, "project", "run", "--sink", sink, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:

        def listed(expected: int):
            run = agentlog(
                *base,
                "conversations",
                "list",
                "--sink",
                sink,
                "--limit",
                "1000",
                state_dir=tmp_path,
            )
            rows = run.out.strip().splitlines()[1:] if run.code == 0 else []
            return run if len(rows) == expected else None

        first = wait_for(lambda: listed(20), 60, "the 20 conversations listed while projecting")
        assert "note: a projector holds" in first.err and "snapshot of" in first.err
        assert projector.poll() is None, "the projector must still be running"

        _record(settings, 20, 10)
        wait_for(lambda: listed(30), 60, "the 30 conversations listed while projecting")

        def caught_up():
            run = agentlog(*base, "project", "status", "--sink", sink, state_dir=tmp_path)
            return run if run.code == 0 and "total lag: 0 events" in run.out else None

        status = wait_for(caught_up, 60, "project status to show lag 0")
        assert "snapshot of" in status.err
    finally:
        projector.send_signal(signal.SIGINT)
        _, said = projector.communicate(timeout=60)
    assert projector.returncode == 130  # Ctrl-C, after the batch in hand was stored
    # It says what is left and how to finish it, then the one "interrupted" line.
    assert "stopped by Ctrl-C: the batch in hand is stored; `agentlog project run`" in str(said)
    # With the projector gone, readers read the file itself again, without a note.
    after = agentlog(*base, "conversations", "list", "--sink", sink, state_dir=tmp_path)
    assert after.code == 0 and "snapshot" not in after.err
