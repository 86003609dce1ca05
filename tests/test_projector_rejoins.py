"""A `project run` stopped by Ctrl-C while it joins its consumer group leaves a group the
next `project run` joins. On Tansu that group stayed unassignable for good (a new user's
finding: "the group is stuck rebalancing", 11 minutes on); the projector's positions are
in its sink, so it deletes a group left empty before joining."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import uuid
from pathlib import Path

from cli import agentlog, agentlog_process

from agentlog.producers import Recorder
from agentlog.settings import Settings

CONVERSATIONS = 10  # two events each


def _applied(out: str) -> int:
    found = re.search(r"applied ([\d,]+) events? into", out)
    assert found is not None, out
    return int(found.group(1).replace(",", ""))


def test_a_projector_stopped_while_joining_leaves_a_group_the_next_one_joins(
    settings: Settings, tmp_path: Path
) -> None:
    with Recorder(settings) as recorder:
        for n in range(CONVERSATIONS):
            recorder.start_conversation(f"conv-{n}", channel="web_chat", user_id="u")
            recorder.user_message(f"conv-{n}", "hello")
    base = ("--bootstrap", settings.bootstrap_servers, "--topic-prefix", settings.topic_prefix)
    sink = f"duckdb:{tmp_path / 'sink.duckdb'}"
    group = f"joining-{uuid.uuid4().hex[:8]}"
    first = agentlog_process(
        *base, "project", "run", "--sink", sink, "--group", group,
        env={"AGENTLOG_STATE_DIR": str(tmp_path)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    watchdog = threading.Timer(120, first.kill)
    watchdog.start()
    try:
        assert first.stderr is not None
        for line in first.stderr:
            if "new group" in line:  # said just before it joins the group
                first.send_signal(signal.SIGINT)
                break
        out, _ = first.communicate(timeout=60)
    finally:
        watchdog.cancel()
    assert first.returncode == 130

    again = agentlog(
        *base, "project", "run", "--once", "--sink", sink, "--group", group,
        state_dir=tmp_path, env={"AGENTLOG_ASSIGNMENT_TIMEOUT_S": "30"},
    )  # fmt: skip
    assert again.code == 0, again.err
    assert _applied(out) + _applied(again.out) == 2 * CONVERSATIONS
