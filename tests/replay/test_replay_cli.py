"""`agentlog replay` as a reviewer uses it: a transcript with every event's position, the
state at a moment or offset, machine formats, and one clear line for each mistake."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.cli import agentlog
from helpers.kafka_python_reader import read_all

from agentlog.producers import Recorder
from agentlog.settings import Settings

CONVERSATION = "conv-cli"


def _record(settings: Settings) -> None:
    """A conversation at known times: events 10 s apart, a failure and an escalation."""
    now = [1_790_000_000_000_000]

    def tick() -> int:
        now[0] += 10_000_000
        return now[0]

    with Recorder(settings, clock_micros=tick) as recorder:
        recorder.start_conversation(CONVERSATION, channel="web_chat", user_id="u-1")
        recorder.user_message(CONVERSATION, "I was charged twice")
        recorder.llm_call(
            CONVERSATION,
            agent="billing",
            provider="openai",
            request_model="gpt-4o",
            input=[{"role": "user", "content": "charged twice"}],
            output_text="Let me look.",
            input_tokens=812,
            output_tokens=40,
            latency_ms=640.0,
        )
        requested = recorder.tool_call_requested(
            CONVERSATION, "call-1", "lookup_invoice", {"invoice_id": "INV-1"}, agent="billing"
        )
        recorder.tool_call_failed(
            CONVERSATION,
            "call-1",
            "lookup_invoice",
            error_type="TimeoutError",
            error_message="no answer in 5 s",
            duration_ms=5000.0,
            causation_id=requested,
        )
        recorder.escalation(CONVERSATION, "billing", "tool failures", target="human")
        recorder.end_conversation(CONVERSATION, "escalated")
        recorder.user_message("conv-other", "someone else")


@pytest.fixture
def recorded(settings: Settings, tmp_path: Path) -> tuple[Settings, Path]:
    _record(settings)
    sink = f"duckdb:{tmp_path / 'p.duckdb'}"
    projected = settings.with_overrides(sink=sink)
    run = _agentlog(projected, tmp_path, "project", "run", "--once")
    assert run.code == 0, run.err
    return projected, tmp_path


def _agentlog(settings: Settings, tmp_path: Path, *args: str):
    base = ("--bootstrap", settings.bootstrap_servers, "--topic-prefix", settings.topic_prefix)
    return agentlog(*base, *args, state_dir=tmp_path, env={"AGENTLOG_SINK": settings.sink_url})


def _positions(settings: Settings) -> list[tuple[int, int]]:
    records = read_all(settings.bootstrap_servers, settings.events_topic)
    return [(r.partition, r.offset) for r in records if r.key == CONVERSATION.encode()]


def test_the_transcript_shows_every_event_with_its_position_and_the_state(recorded) -> None:
    settings, tmp_path = recorded
    run = _agentlog(settings, tmp_path, "replay", CONVERSATION)
    assert run.code == 0, run.err
    assert run.err == ""  # read through the index: nothing to note
    lines = run.out.splitlines()
    positions = _positions(settings)
    partition = positions[0][0]
    assert f"on {settings.events_topic}[{partition}] offsets {positions[0][1]}" in lines[1]
    assert "read 7 records through the conversation_index" in lines[1]
    events = [line for line in lines if " p" in line and "@" in line and line.startswith(" ")]
    assert [line.split()[1] for line in events] == [f"p{p}@{o}" for p, o in positions]
    assert [line.split()[0] for line in events][:3] == ["+0:00.000", "+0:10.000", "+0:20.000"]
    assert "lookup_invoice attempt 1 after 5,000 ms: TimeoutError" in run.out
    assert "billing -> human: tool failures" in run.out
    assert "state: ended, outcome escalated" in run.out
    assert "\x1b[" not in run.out  # no colours when not on a terminal
    coloured = _agentlog(settings, tmp_path, "replay", CONVERSATION, "--color")
    assert "\x1b[31m\x1b[1mtool_call_failed" in coloured.out
    verbose = _agentlog(settings, tmp_path, "replay", CONVERSATION, "--verbose")
    assert '"invoice_id": "INV-1"' in verbose.out and '"event_id":' in verbose.out


def test_the_clock_stops_at_a_time_or_an_offset(recorded) -> None:
    settings, tmp_path = recorded
    positions = _positions(settings)
    at = _agentlog(settings, tmp_path, "replay", CONVERSATION, "--at", "+0:25")
    assert at.code == 2 and "'+0:25'" in at.err  # not a duration: a usage error
    at = _agentlog(settings, tmp_path, "replay", CONVERSATION, "--at", "+25s")
    assert at.code == 0, at.err
    assert "after 3 of 7 events: active" in at.out
    assert "1 LLM call (812 in / 40 out tokens), 0 tool calls" in at.out
    absolute = _agentlog(settings, tmp_path, "replay", CONVERSATION, "--at", "2026-09-21T14:13:55Z")
    assert "after 3 of 7 events" in absolute.out
    until = _agentlog(
        settings, tmp_path, "replay", CONVERSATION, "--until-offset", str(positions[4][1])
    )
    assert until.code == 0, until.err
    assert f"at offset {positions[4][1]}, after 5 of 7 events: active" in until.out
    assert "1 tool call (1 failed attempt, 0 open)" in until.out
    assert "tool lookup_invoice failed after 1 attempt: TimeoutError" in until.out


def test_machine_formats_carry_every_position_and_the_state(recorded) -> None:
    settings, tmp_path = recorded
    positions = _positions(settings)
    jsonl = _agentlog(settings, tmp_path, "replay", CONVERSATION, "--format", "jsonl")
    events = [json.loads(line) for line in jsonl.out.splitlines()]
    assert [(e["partition"], e["offset"]) for e in events] == positions
    assert {e["topic"] for e in events} == {settings.events_topic}
    assert events[3]["payload"]["arguments_json"] == '{"invoice_id":"INV-1"}'
    document = json.loads(
        _agentlog(settings, tmp_path, "replay", CONVERSATION, "--format", "json").out
    )
    assert document["read"]["method"] == "index"
    assert len(document["events"]) == 7
    [row] = document["state"]["agentlog_conversations"]
    assert (row["status"], row["outcome"], row["escalations"]) == ("ended", "escalated", 1)
    assert row["first_activity"].endswith("Z")
    out = tmp_path / "replay.jsonl"
    _agentlog(settings, tmp_path, "replay", CONVERSATION, "--format", "jsonl", "--out", str(out))
    assert out.read_text() == jsonl.out


def _one_error(run, *parts: str) -> None:
    assert run.code == 1, run.out
    errors = [line for line in run.err.splitlines() if not line.startswith("note: ")]
    assert len(errors) == 1 and errors[0].startswith("error: "), run.err
    for part in parts:
        assert part in errors[0], run.err


def test_mistakes_get_one_clear_line(recorded) -> None:
    settings, tmp_path = recorded
    positions = _positions(settings)
    _one_error(
        _agentlog(settings, tmp_path, "replay", "conv-nobody"),
        "no conversation 'conv-nobody'",
        "conversation_index does not have it",
    )
    _one_error(
        _agentlog(settings, tmp_path, "replay", "conv-nobody", "--scan"),
        "no conversation 'conv-nobody'",
        "none of the",
    )
    _one_error(
        _agentlog(settings, tmp_path, "replay", CONVERSATION, "--until-offset", "99999"),
        "--until-offset 99999 is beyond the end",
        "its last offset is",
    )
    _one_error(
        _agentlog(settings, tmp_path, "replay", CONVERSATION, "--at", "2020-01-01T00:00:00"),
        "--at 2020-01-01T00:00:00.000Z is before the first event of 'conv-cli'",
    )
    if positions[0][1] > 0:
        _one_error(
            _agentlog(settings, tmp_path, "replay", CONVERSATION, "--until-offset", "0"),
            "--until-offset 0 is before the first event",
        )
    html = _agentlog(settings, tmp_path, "replay", CONVERSATION, "--format", "html")
    assert html.code == 2 and "--out FILE" in html.err
    bad_prefix = agentlog(
        "--bootstrap",
        settings.bootstrap_servers,
        "--topic-prefix",
        "nothing-here.",
        "replay",
        CONVERSATION,
        state_dir=tmp_path,
    )
    _one_error(bad_prefix, "topic nothing-here.events does not exist")


def test_a_sink_without_the_index_falls_back_to_a_scan_and_says_so(recorded) -> None:
    settings, tmp_path = recorded
    missing = str(tmp_path / "elsewhere.duckdb")
    run = _agentlog(settings, tmp_path, "replay", CONVERSATION, "--sink", f"duckdb:{missing}")
    assert run.code == 0, run.err
    [note] = run.err.splitlines()
    assert note.startswith("note: no projections in") and "scanning all" in note
    assert "read by scanning the partition" not in run.out
    assert "records by scanning the partition" in run.out
    unreachable = "postgresql://postgres@127.0.0.1:1/nothing"
    run_pg = _agentlog(settings, tmp_path, "replay", CONVERSATION, "--sink", unreachable)
    assert run_pg.code == 0, run_pg.err
    [note] = run_pg.err.splitlines()
    assert "cannot connect to PostgreSQL" in note and "scanning all" in note
    assert run_pg.out == run.out
    indexed = _agentlog(settings, tmp_path, "replay", CONVERSATION)
    # The same events and state either way; only how they were found differs.
    assert run.out.splitlines()[2:] == indexed.out.splitlines()[2:]
