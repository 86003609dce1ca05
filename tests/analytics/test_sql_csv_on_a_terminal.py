"""`agentlog sql --format csv` keeps values whole in a file or a pipe, but on a terminal
the log's control characters are shown, never emitted."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

from helpers.cli import clean_environment

_QUERY = "SELECT chr(27) || ']0;TITLE' || chr(7) || 'red' AS v"


def _sql_csv(tmp_path, stdout) -> subprocess.Popen[bytes]:
    (tmp_path / "archive").mkdir(exist_ok=True)
    env = clean_environment({"AGENTLOG_STATE_DIR": str(tmp_path)})
    return subprocess.Popen(
        [sys.executable, "-m", "agentlog", "sql", _QUERY, "--format", "csv"],
        stdout=stdout,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=env,
    )


def test_csv_into_a_pipe_keeps_the_value_whole(tmp_path) -> None:
    process = _sql_csv(tmp_path, subprocess.PIPE)
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 0
    assert out.decode().splitlines()[1] == "\x1b]0;TITLE\x07red"


def test_csv_on_a_terminal_shows_control_characters(tmp_path) -> None:
    leader, follower = pty.openpty()
    process = _sql_csv(tmp_path, follower)
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the command closed the terminal: all is read
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert process.wait(timeout=120) == 0
    assert b"\x1b" not in shown and b"\x07" not in shown
    assert "␛]0;TITLE␇red" in shown.decode()
