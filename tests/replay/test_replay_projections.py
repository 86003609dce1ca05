"""`agentlog replay projections --into SINK`: the projections rebuilt from the offsets the
live sink applied equal the live ones row for row, and any difference is named."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest
from helpers.cli import agentlog

from agentlog.consumers import open_sink
from agentlog.errors import ReplayError
from agentlog.replay.projections import rebuild_projections
from agentlog.settings import Settings


def _agentlog(settings: Settings, tmp_path: Path, *args: str, sink: str):
    base = ("--bootstrap", settings.bootstrap_servers, "--topic-prefix", settings.topic_prefix)
    return agentlog(*base, *args, state_dir=tmp_path, env={"AGENTLOG_SINK": sink}, timeout=300)


def _demo(settings: Settings, tmp_path: Path, sink: str, *extra: str) -> int:
    # The simulated bulk only (--no-live): the tests count its conversations and events.
    run = _agentlog(
        settings, tmp_path, "demo", "-n", "30", "--seed", "12", "--no-live", *extra, sink=sink
    )
    assert run.code == 0, run.err
    return int(re.search(r"recorded (\d+) events", run.out).group(1))


def test_rebuilt_projections_equal_the_live_ones(
    settings: Settings, sink_url: str, tmp_path: Path
) -> None:
    written = _demo(settings, tmp_path, sink_url)
    into = f"duckdb:{tmp_path / 'rebuilt.duckdb'}"
    run = _agentlog(settings, tmp_path, "replay", "projections", "--into", into, sink=sink_url)
    assert run.code == 0, run.err
    assert f"rebuilt {written:,} events" in run.out
    assert "agentlog_conversations: 30 rows, no differences" in run.out
    assert "agentlog_conversation_index: 30 rows, no differences" in run.out
    assert run.out.splitlines()[-1].startswith("no differences")
    with open_sink(into, read_only=True) as rebuilt, open_sink(sink_url, read_only=True) as live:
        for table in ("agentlog_conversations", "agentlog_tool_calls"):
            query = f"SELECT count(*) FROM {table}"
            assert rebuilt.query(query) == live.query(query)
    again = _agentlog(settings, tmp_path, "replay", "projections", "--into", into, sink=sink_url)
    assert again.code == 1 and "already holds a rebuild" in again.err


def test_a_changed_live_row_and_an_impure_projection_are_reported(
    settings: Settings, tmp_path: Path
) -> None:
    live_path = tmp_path / "live.duckdb"
    live = f"duckdb:{live_path}"
    _demo(settings, tmp_path, live)
    with duckdb.connect(str(live_path)) as db:
        db.execute(
            "UPDATE agentlog_conversations SET turns = turns + 1 "
            "WHERE conversation_id = 'conv-12-00004'"
        )
        db.execute("DELETE FROM agentlog_tool_calls WHERE conversation_id = 'conv-12-00007'")
    into = f"duckdb:{tmp_path / 'rebuilt.duckdb'}"
    run = _agentlog(settings, tmp_path, "replay", "projections", "--into", into, sink=live)
    assert run.code == 0, run.err
    assert "agentlog_conversations: 30 rows, 1 difference" in run.out
    assert "  differs:      conv-12-00004 (turns)" in run.out
    assert re.search(r"  only rebuilt: conv-12-00007/call_\w+", run.out)
    assert "agentlog_conversation_index: 30 rows, no differences" in run.out

    # A projection that reads the wall clock cannot be rebuilt from the log.
    other = f"duckdb:{tmp_path / 'other.duckdb'}"
    projection = ("--projection", "helpers.impure_projection:WallClock")
    projected = _agentlog(settings, tmp_path, "project", "run", "--once", *projection, sink=other)
    assert projected.code == 0, projected.err
    rebuilt = f"duckdb:{tmp_path / 'rebuilt-impure.duckdb'}"
    run = _agentlog(
        settings, tmp_path, "replay", "projections", "--into", rebuilt, *projection, sink=other
    )
    assert run.code == 0, run.err
    assert "test_wall_clock: 30 rows, 30 differences" in run.out
    assert "differs:      conv-12-00000 (seen_at_ns)" in run.out


def test_from_a_time_rebuilds_the_conversations_active_since(
    settings: Settings, tmp_path: Path
) -> None:
    live_path = tmp_path / "live.duckdb"
    live = f"duckdb:{live_path}"
    _demo(settings, tmp_path, live)
    with duckdb.connect(str(live_path), read_only=True) as db:
        middle = db.execute(
            "SELECT strftime(min(last_time) + (max(last_time) - min(last_time)) / 2, "
            "'%Y-%m-%dT%H:%M:%S') FROM agentlog_conversation_index"
        ).fetchone()[0]
        active = db.execute(
            "SELECT count(*) FROM agentlog_conversation_index WHERE last_time >= ?::TIMESTAMP",
            [middle],
        ).fetchone()[0]
    assert 0 < active < 30
    into = f"duckdb:{tmp_path / 'rebuilt.duckdb'}"
    run = _agentlog(
        settings, tmp_path, "replay", "projections", "--into", into, "--from", middle, sink=live
    )
    assert run.code == 0, run.err
    assert f"agentlog_conversations: {active} rows, no differences" in run.out
    with open_sink(into, read_only=True) as rebuilt:
        assert rebuilt.query("SELECT count(*) FROM agentlog_conversations")[0][0] == active


def test_refusals_name_the_problem(settings: Settings, tmp_path: Path) -> None:
    live = f"duckdb:{tmp_path / 'live.duckdb'}"
    run = _agentlog(settings, tmp_path, "replay", "projections", "--into", live, sink=live)
    assert run.code == 1 and "not the live one" in run.err
    empty = f"duckdb:{tmp_path / 'nothing.duckdb'}"
    into = f"duckdb:{tmp_path / 'rebuilt.duckdb'}"
    run = _agentlog(settings, tmp_path, "replay", "projections", "--into", into, sink=empty)
    assert run.code == 1 and "no projections in" in run.err
    assert len(run.err.strip().splitlines()) == 1
    run = _agentlog(
        settings, tmp_path, "replay", "projections", "--into", into, "--from", "+5s", sink=live
    )
    assert run.code == 2 and "a time, not a duration" in run.err


def test_a_rebuild_into_memory_is_compared_and_a_live_memory_sink_refused(
    settings: Settings, tmp_path: Path
) -> None:
    live = f"duckdb:{tmp_path / 'live.duckdb'}"
    written = _demo(settings, tmp_path, live)
    # Nothing to keep: the rebuild lives in the command's memory, only the comparison counts.
    run = _agentlog(settings, tmp_path, "replay", "projections", "--into", "memory:", sink=live)
    assert run.code == 0, run.err
    assert f"rebuilt {written:,} events" in run.out
    assert "agentlog_conversations: 30 rows, no differences" in run.out
    assert run.out.splitlines()[-1].startswith("no differences")

    # The owners and the index of a live sink are read with SQL: a memory sink has none.
    open_sink("memory:live-projections").close()  # the store lives on in this process
    with pytest.raises(ReplayError, match="memory:live-projections answers no SQL"):
        rebuild_projections(settings, live_url="memory:live-projections", into_url="memory:")
