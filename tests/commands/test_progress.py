"""Long work shows a progress bar on a terminal (stderr) and nothing anywhere else: a pipe,
a file or a test gets only the results on stdout, whatever `--progress` says for stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cli import agentlog, clean_environment
from helpers.offline_archive import archive_offline
from helpers.offline_log import simulated_log

BAR = "exporting"  # the bar's label


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    folder = tmp_path / "archive"
    archive_offline(simulated_log(30), folder)
    return folder


def export_args(archive: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--topic-prefix",
        "offline.",
        "export",
        "training",
        "--out",
        str(out),
        "--dir",
        str(archive),
        "--no-update",
        *extra,
    ]


def on_a_terminal(args: list[str], state_dir: Path) -> tuple[int, str, str]:
    """Run with stderr on a pseudo-terminal and stdout on a pipe: (code, stdout, what
    the terminal showed)."""
    controller, terminal = os.openpty()
    environment = clean_environment({"AGENTLOG_STATE_DIR": str(state_dir), "COLUMNS": "120"})
    process = subprocess.Popen(
        [sys.executable, "-m", "agentlog", *args],
        stdout=subprocess.PIPE,
        stderr=terminal,
        stdin=subprocess.DEVNULL,
        env=environment,
    )
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: the process ended
            break
        if not chunk:
            break
        shown += chunk
    out, _ = process.communicate(timeout=120)
    os.close(controller)
    return process.returncode, out.decode(), shown.decode(errors="replace")


def test_no_progress_reaches_a_pipe(archive: Path, tmp_path: Path) -> None:
    run = agentlog(*export_args(archive, tmp_path / "a.jsonl"), state_dir=tmp_path)
    assert run.code == 0, run.err
    assert BAR not in run.err and "\x1b" not in run.err
    assert "\x1b" not in run.out and "\r" not in run.out
    lines = run.out.strip().splitlines()
    assert lines[0].startswith("wrote ") and "conversations," in lines[-1]


def test_the_bar_is_drawn_on_a_terminal_and_stdout_stays_clean(
    archive: Path, tmp_path: Path
) -> None:
    piped = agentlog(*export_args(archive, tmp_path / "a.jsonl"), state_dir=tmp_path)
    code, out, shown = on_a_terminal(export_args(archive, tmp_path / "b.jsonl"), tmp_path)
    assert code == 0, shown
    assert BAR in shown and "events/s" in shown
    assert "\x1b" not in out and BAR not in out
    # The same results as through a pipe (the file's name and the timing aside).
    assert len(out.splitlines()) == len(piped.out.splitlines())

    code, out, shown = on_a_terminal(
        export_args(archive, tmp_path / "c.jsonl", "--no-progress"), tmp_path
    )
    assert code == 0 and BAR not in shown


def test_progress_flag_draws_it_on_stderr_only(archive: Path, tmp_path: Path) -> None:
    run = agentlog(*export_args(archive, tmp_path / "a.jsonl", "--progress"), state_dir=tmp_path)
    assert run.code == 0, run.err
    assert BAR in run.err
    assert BAR not in run.out and "\x1b" not in run.out


def test_archiving_shows_progress_only_where_asked(settings, tmp_path: Path) -> None:
    from helpers.workloads import record

    record(settings, 20)
    base = ["--bootstrap", settings.bootstrap_servers, "--topic-prefix", settings.topic_prefix]
    quiet = agentlog(
        *base, "archive", "run", "--once", "--dir", str(tmp_path / "a"), state_dir=tmp_path
    )
    assert quiet.code == 0, quiet.err
    said = quiet.err.replace(str(tmp_path), "<tmp>")  # the test's folder name says "archiving"
    assert "archiving" not in said and "\x1b" not in quiet.err + quiet.out
    assert quiet.out.startswith("archived ")
    shown = agentlog(
        *base,
        "archive",
        "run",
        "--once",
        "--progress",
        "--dir",
        str(tmp_path / "b"),
        state_dir=tmp_path,
    )
    assert shown.code == 0, shown.err
    assert "archiving" in shown.err and "records/s" in shown.err
    assert shown.out.splitlines()[0].replace(str(tmp_path / "b"), "") == quiet.out.splitlines()[
        0
    ].replace(str(tmp_path / "a"), "")


def test_a_compliance_bundle_shows_progress_only_where_asked(archive: Path, tmp_path: Path) -> None:
    args = ["--topic-prefix", "offline.", "export", "compliance", "--dir", str(archive)]
    args += ["--no-update", "--user", _some_user(archive)]
    quiet = agentlog(*args, "--out", str(tmp_path / "a"), state_dir=tmp_path)
    assert quiet.code == 0, quiet.err
    assert "bundling" not in quiet.err and "\x1b" not in quiet.err + quiet.out
    shown = agentlog(*args, "--out", str(tmp_path / "b"), "--progress", state_dir=tmp_path)
    assert shown.code == 0, shown.err
    assert "bundling" in shown.err and "events/s" in shown.err
    assert "\x1b" not in shown.out and shown.out.startswith("wrote ")


def _some_user(archive: Path) -> str:
    from agentlog.analytics import open_views

    with open_views(archive, "offline.events", None) as views:
        _, rows = views.query("SELECT min(user_id) FROM events WHERE user_id IS NOT NULL")
    return str(rows[0][0])


def test_quiet_draws_no_bar_even_on_a_terminal(archive: Path, tmp_path: Path) -> None:
    code, out, shown = on_a_terminal(
        export_args(archive, tmp_path / "a.jsonl", "--quiet"), tmp_path
    )
    assert code == 0, shown
    assert BAR not in shown and "\x1b" not in shown
    assert out.startswith("wrote ")


def test_a_projector_shows_its_status_line_on_a_terminal_only(settings, tmp_path: Path) -> None:
    """`project run`'s figures are drawn by rich on a terminal, as every progress is: no
    hand-written carriage returns, nothing through a pipe, nothing with --quiet."""
    from helpers.workloads import record

    record(settings, 20)
    base = ["--bootstrap", settings.bootstrap_servers, "--topic-prefix", settings.topic_prefix]

    def sink(name: str) -> list[str]:
        return ["--sink", f"duckdb:{tmp_path / name}.duckdb", "--group", name]

    code, out, shown = on_a_terminal([*base, "project", "run", "--once", *sink("drawn")], tmp_path)
    assert code == 0, shown
    assert "projecting" in shown and "\x1b[" in shown and "\r" + "applied" not in shown
    assert out.startswith("applied ") and "\x1b" not in out
    code, out, shown = on_a_terminal(
        [*base, "project", "run", "--once", *sink("quiet"), "--quiet"], tmp_path
    )
    assert code == 0, shown
    assert "projecting" not in shown and out.startswith("applied ")
    piped = agentlog(*base, "project", "run", "--once", *sink("piped"), state_dir=tmp_path)
    assert piped.code == 0, piped.err
    assert "\x1b" not in piped.err + piped.out and "\r" not in piped.err
