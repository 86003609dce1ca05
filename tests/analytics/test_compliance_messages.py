"""What `export compliance` and `export verify` tell the user, on an archive written
without a broker (--no-update): the same count of files, plain sentences, and a request
with nothing selected refused as a usage error before anything is read."""

from __future__ import annotations

import re
from pathlib import Path

from helpers.cli import agentlog
from helpers.offline_archive import archive_offline
from helpers.offline_log import simulated_log

BASE = ("--topic-prefix", "offline.", "export")


def test_compliance_and_verify_count_the_same_files(tmp_path: Path) -> None:
    log = simulated_log(2)
    archive_offline(log, tmp_path / "archive")
    conversation_id = log.records[0].key.decode()
    out = tmp_path / "bundle"
    wrote = agentlog(
        *BASE, "compliance", "--out", str(out), "--conversation", conversation_id,
        "--dir", str(tmp_path / "archive"), "--no-update", "--no-progress",
        state_dir=tmp_path,
    )  # fmt: skip
    assert wrote.code == 0, wrote.err
    verified = agentlog(*BASE, "verify", str(out), state_dir=tmp_path)
    assert verified.code == 0, verified.err
    written = re.search(r"(\d+) files and manifest\.json", wrote.out)
    matched = re.search(r"all (\d+) files match manifest\.json", verified.out)
    assert written and matched, (wrote.out, verified.out)
    assert written.group(1) == matched.group(1)
    assert "1 conversations" not in wrote.out + verified.out


def test_a_conversation_the_archive_does_not_hold_is_one_plain_line(tmp_path: Path) -> None:
    archive_offline(simulated_log(1), tmp_path / "archive")
    run = agentlog(
        *BASE, "compliance", "--out", str(tmp_path / "b"), "--conversation", "nosuch",
        "--dir", str(tmp_path / "archive"), "--no-update", "--no-progress",
        state_dir=tmp_path,
    )  # fmt: skip
    assert run.code == 1
    assert run.err.count("\n") == 1 and "{" not in run.err, run.err
    assert "conversation nosuch" in run.err


def test_nothing_selected_is_a_usage_error_before_the_archive_is_updated(tmp_path: Path) -> None:
    # No Kafka is configured: updating the archive first would fail on that instead.
    run = agentlog(*BASE, "compliance", "--out", str(tmp_path / "b"), state_dir=tmp_path)
    assert run.code == 2, run.err
    assert "--conversation" in run.err and "bringing the archive" not in run.err
