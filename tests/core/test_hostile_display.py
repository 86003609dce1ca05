"""What a producer writes cannot drive the reviewer's terminal nor forge the audit trail:
a user message holding escape sequences (window title, erased lines, OSC 52 clipboard)
and an agent whose name holds CR LF and a transcript line reach `tail`, `replay`,
compliance transcripts and error lines with their control characters shown."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers.cli import agentlog
from helpers.offline_archive import archive_offline
from helpers.offline_log import TOPIC, OfflineLog, events_of

from agentlog.display import visible, visible_block
from agentlog.producers import Recorder
from agentlog.replay.transcript import summary
from agentlog.settings import Settings

CONVERSATION = "conv-hostile"
# Sets the window title, erases the line, moves up a line, then asks for the clipboard.
MESSAGE = "hi\x1b]0;TITLE\x07\x1b[2K\x1b[1Aall is well\x1b]52;c;cm0gLXJmIH4K\x07 \x9b31m"
# A name that, printed raw, ends its line and starts one like the transcript's own.
AGENT = "bot\r\n    +0.000s  p0@99  conversation_ended  outcome resolved"
FORGED = re.compile(r"^\s*\+0\.000s\s+p0@99\s+conversation_ended", re.MULTILINE)
RAW = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _record(log) -> None:
    log.start_conversation(CONVERSATION, channel="web\x1b[8m", user_id="u-1")
    log.user_message(CONVERSATION, MESSAGE)
    log.agent_message(CONVERSATION, AGENT, "line one\nline two\r\n  +0.000s  p0@1  forged")
    log.handoff(CONVERSATION, AGENT, "billing\u202eevil", reason="moved\rover")
    log.end_conversation(CONVERSATION, "resolved", reason="done\x1b[2J")


def _assert_shown_not_emitted(text: str) -> None:
    assert not RAW.search(text), repr(RAW.search(text))
    assert not FORGED.search(text), text
    assert "␛]0;TITLE␇" in text  # the attempt stays visible


def test_the_rule_shows_every_control_character_and_keeps_text() -> None:
    assert visible(MESSAGE) == ("hi␛]0;TITLE␇␛[2K␛[1Aall is well␛]52;c;cm0gLXJmIH4K␇ \\x9b31m")
    assert visible("a\tb\r\nc\u202ed\u2028") == "a␉b␍␊c\\u202ed\\u2028"
    assert visible("Grüße, 東京 ✓") == "Grüße, 東京 ✓"
    assert visible(visible(MESSAGE)) == visible(MESSAGE)  # shown once is shown
    # A body keeps its lines; none can start like a line of the output around it.
    block = visible_block("first\r\n+0.000s  p0@99  x\rthird\x1b[2K\tend", indent="    ")
    assert block.splitlines() == ["first", "    +0.000s  p0@99  x", "    third␛[2K\tend"]


def test_transcript_lines_of_hostile_events() -> None:
    log = OfflineLog()
    _record(log)
    lines = [summary(event) for event in events_of(log.records)]
    assert len(lines) == 5
    for line in lines:
        assert not RAW.search(line) and "\n" not in line, repr(line)


def test_replay_and_compliance_transcripts_show_what_the_record_holds(tmp_path: Path) -> None:
    log = OfflineLog()
    _record(log)
    archive = tmp_path / "archive"
    archive_offline(log, archive)
    prefix = TOPIC.removesuffix("events")
    replay = agentlog(
        "--topic-prefix", prefix, "replay", CONVERSATION, "--source", "archive",
        "--archive-dir", str(archive), "--verbose",
        state_dir=tmp_path,
    )  # fmt: skip
    assert replay.code == 0, replay.err
    _assert_shown_not_emitted(replay.out)
    assert "bot␍␊    +0.000s  p0@99  conversation_ended" in replay.out
    assert not RAW.search(replay.err)

    bundle = tmp_path / "bundle"
    run = agentlog(
        "--topic-prefix", prefix, "export", "compliance", "--no-update", "--dir", str(archive),
        "--conversation", CONVERSATION, "--out", str(bundle),
        state_dir=tmp_path,
    )  # fmt: skip
    assert run.code == 0, run.err
    text = (bundle / "transcripts" / f"{CONVERSATION}.txt").read_text()
    _assert_shown_not_emitted(text)
    page = (bundle / "transcripts" / f"{CONVERSATION}.html").read_text()
    assert "\x1b" not in page and "\x07" not in page


def test_an_error_line_quoting_hostile_text_stays_one_visible_line(tmp_path: Path) -> None:
    run = agentlog(
        "sql", 'SELECT * FROM "x\x1b]0;TITLE\x07\x1b[2K\r\nerror: forged"', state_dir=tmp_path
    )
    assert run.code == 1
    error = run.err.splitlines()[-1]
    assert error.startswith("error: SQL: ") and "␛]0;TITLE␇" in error, run.err
    assert not RAW.search(run.err)
    assert not any(line.startswith("error: forged") for line in run.err.splitlines())


@pytest.mark.kafka
def test_tail_shows_hostile_events_as_one_line_each(settings: Settings, tmp_path: Path) -> None:
    with Recorder(settings) as recorder:
        _record(recorder)
    base = ("--bootstrap", settings.bootstrap_servers, "--topic-prefix", settings.topic_prefix)
    run = agentlog(*base, "tail", "--from-beginning", "-c", CONVERSATION, state_dir=tmp_path)
    assert run.code == 0, run.err
    _assert_shown_not_emitted(run.out)
    assert len(run.out.splitlines()) == 5  # one line per event, whatever they hold


def test_a_training_export_names_an_invalid_conversation_visibly(tmp_path: Path) -> None:
    """An unanswered tool call keeps a conversation out of training data; the line that
    says so quotes its id and the call's id, both written by whoever recorded them."""
    log = OfflineLog()
    conversation = "conv\x1b]0;TITLE\x07\r\nwrote 9 examples to /etc/passwd"
    log.start_conversation(conversation, channel="web")
    log.user_message(conversation, "where is it?")
    log.tool_call_requested(conversation, "call\x1b[2K\x1b[1A", "lookup", {"id": 1})
    archive = tmp_path / "archive"
    archive_offline(log, archive)
    run = agentlog(
        "--topic-prefix", TOPIC.removesuffix("events"), "export", "training", "--no-update",
        "--dir", str(archive), "--out", str(tmp_path / "out.jsonl"),
        state_dir=tmp_path,
    )  # fmt: skip
    assert run.code == 0, run.err
    assert not RAW.search(run.err), repr(run.err)
    (invalid,) = [line for line in run.err.splitlines() if line.startswith("invalid: ")]
    assert invalid.startswith("invalid: conv␛]0;TITLE␇␍␊wrote 9 examples to /etc/passwd: ")
    assert "tool call call␛[2K␛[1A calls 'lookup'" in invalid
