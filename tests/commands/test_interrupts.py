"""Ctrl-C (SIGINT) ends a command in any phase with exit 130, and says what it leaves
unfinished and how to finish it: the demo's projection phase, its live phase (the dead
letter it made is resolved first), `project run`."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

from helpers.cli import clean_environment

from agentlog.consumers.dead_letters import dead_letter_states
from agentlog.settings import Settings


def _demo_until(bootstrap: str, tmp_path: Path, marker: str, *extra: str) -> tuple[int, str, str]:
    """Run the demo, send SIGINT once `marker` is printed (stdout or stderr), and return
    its exit code and output."""
    prefix = f"int{uuid.uuid4().hex[:8]}."
    process = subprocess.Popen(
        [sys.executable, "-m", "agentlog", "--bootstrap", bootstrap, "--topic-prefix", prefix,
         "demo", *extra],
        env=clean_environment({"AGENTLOG_STATE_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    # A bound for a hang, not a timing: the live phase on a loaded Kafka once took over 240 s.
    watchdog = threading.Timer(420, process.kill)
    watchdog.start()
    seen: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            seen.append(line)
            if marker in line:
                process.send_signal(signal.SIGINT)
                break
        rest = process.stdout.read()
        process.wait(timeout=60)
    finally:
        watchdog.cancel()
    return process.returncode, "".join(seen) + rest, prefix


def test_ctrl_c_in_the_demos_projection_phase_stops_it_with_130(
    bootstrap: str, tmp_path: Path
) -> None:
    code, out, _ = _demo_until(
        bootstrap, tmp_path, "... projecting into the sink", "--no-live", "-n", "400"
    )
    assert code == 130, out
    assert "Traceback" not in out
    # It stopped there: no later phase ran.
    assert "... summarising" not in out and "replaying" not in out and "next:" not in out
    assert out.splitlines()[-1] in ("aborted", "interrupted")


def test_ctrl_c_in_the_demos_live_phase_leaves_no_open_letter(
    bootstrap: str, tmp_path: Path
) -> None:
    code, out, prefix = _demo_until(bootstrap, tmp_path, "is parked behind it", "-n", "5")
    assert code == 130, out
    assert "Traceback" not in out
    assert "interrupted: resolving dead letter" in out
    assert "resolved: " in out and "is no longer parked" in out, out
    settings = Settings(bootstrap_servers=bootstrap, topic_prefix=prefix)
    states = dead_letter_states(settings)
    assert states.parked_conversations() == {}
    assert states.open_by_group() == {}
