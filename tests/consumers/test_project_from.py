"""`agentlog project run --from earliest|latest|TIME`: a NEW projection starts where it is
told, stores that start with its first offsets (so it says its state is partial), and a
projection with offsets ignores --from."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from helpers.cli import agentlog

from agentlog.producers import Recorder
from agentlog.reader import read_partitions
from agentlog.settings import Settings


def _record(settings: Settings, conversations: list[str]) -> None:
    with Recorder(settings) as recorder:
        for conversation in conversations:
            recorder.user_message(conversation, "hello")


def _cli(settings: Settings, tmp_path: Path, sink: str, *args: str):  # type: ignore[no-untyped-def]
    base = ("--bootstrap", str(settings.bootstrap_servers), "--topic-prefix", settings.topic_prefix)
    return agentlog(*base, *args, "--sink", sink, state_dir=tmp_path)


def _conversations(settings: Settings, tmp_path: Path, sink: str) -> tuple[set[str], str]:
    listed = _cli(settings, tmp_path, sink, "conversations", "list")
    assert listed.code == 0, listed.err
    shown = {line.split()[0] for line in listed.out.splitlines()[1:] if line.strip()}
    return shown, listed.err


def test_a_new_projection_from_latest_applies_only_what_follows_and_says_it_is_partial(
    settings: Settings, tmp_path: Path
) -> None:
    _record(settings, ["conv-before-1", "conv-before-2"])
    sink = f"duckdb:{tmp_path / 'late.duckdb'}"
    first = _cli(settings, tmp_path, sink, "project", "run", "--once", "--from", "latest")
    assert first.code == 0, first.err
    assert "starting at the end of the log" in first.err
    assert "PARTIAL state" in first.err
    _record(settings, ["conv-after"])
    again = _cli(settings, tmp_path, sink, "project", "run", "--once", "--from", "earliest")
    assert again.code == 0, again.err
    assert "--from earliest applies only to a new projection" in again.err
    shown, note = _conversations(settings, tmp_path, sink)
    assert shown == {"conv-after"}  # the second run did not go back to the beginning
    assert "PARTIAL" in note
    status = _cli(settings, tmp_path, sink, "project", "status")
    assert status.code == 0, status.err
    assert "total lag: 0 events" in status.out
    assert "PARTIAL: this projection started after the beginning of the log" in status.out
    assert "offsets before it never applied" in status.out


def test_a_new_projection_from_a_time_starts_at_the_first_event_at_or_after_it(
    settings: Settings, tmp_path: Path
) -> None:
    _record(settings, ["conv-old"])
    newest_ms = max(r.timestamp()[1] for r in read_partitions(settings, settings.events_topic))
    since = datetime.fromtimestamp((newest_ms + 1) / 1000, UTC).isoformat()
    _record(settings, ["conv-new"])
    sink = f"duckdb:{tmp_path / 'since.duckdb'}"
    run = _cli(settings, tmp_path, sink, "project", "run", "--once", "--from", since)
    assert run.code == 0, run.err
    assert "starting at the first event at or after" in run.err
    shown, _ = _conversations(settings, tmp_path, sink)
    assert shown == {"conv-new"}


def test_a_projection_from_earliest_applies_everything_and_is_not_partial(
    settings: Settings, tmp_path: Path
) -> None:
    _record(settings, ["conv-a", "conv-b"])
    sink = f"duckdb:{tmp_path / 'all.duckdb'}"
    run = _cli(settings, tmp_path, sink, "project", "run", "--once")
    assert run.code == 0, run.err
    assert "starting at the beginning of the log" in run.err
    assert "PARTIAL" not in run.err
    shown, note = _conversations(settings, tmp_path, sink)
    assert shown == {"conv-a", "conv-b"}
    assert "PARTIAL" not in note
    status = _cli(settings, tmp_path, sink, "project", "status")
    assert "PARTIAL" not in status.out
