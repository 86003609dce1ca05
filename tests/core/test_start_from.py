"""`--from earliest|latest|TIME`: what each word and time means, and a time in the future
refused (no event is at or after it yet, so the group would read every event before it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers.cli import agentlog

from agentlog.errors import ConfigurationError
from agentlog.serde import micros_of
from agentlog.start_from import EARLIEST, LATEST, parse_start_from


def test_words_and_a_past_time() -> None:
    assert parse_start_from("earliest") == EARLIEST
    assert parse_start_from(" Latest ") == LATEST
    start = parse_start_from("2026-11-02T09:00:00Z")
    assert start.kind == "time"
    assert start.micros == micros_of(datetime(2026, 11, 2, 9, tzinfo=UTC))


def test_a_time_in_the_future_is_refused() -> None:
    soon = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    with pytest.raises(ConfigurationError, match="is in the future: use --from latest"):
        parse_start_from(soon)


def test_the_cli_refuses_a_future_time_in_one_line_before_reading_anything(
    tmp_path: Path,
) -> None:
    # No broker listens at port 1: the refusal comes before any connection.
    run = agentlog(
        "--bootstrap", "127.0.0.1:1", "archive", "run", "--from", "2999-01-01",
        state_dir=tmp_path,
    )  # fmt: skip
    assert run.code == 1, run.err
    assert run.err.strip().splitlines() == [
        "error: --from 2999-01-01T00:00:00.000Z is in the future: use --from latest for only "
        "the events from now on"
    ]
    assert not (tmp_path / "archive").exists()
