"""`agentlog dlq` on projection letters: show everything, redrive once, purge."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers.cli import agentlog

from agentlog.consumers import ProjectionRunner, Table, dead_letter_states, handles, open_sink
from agentlog.consumers import dead_letters as dl
from agentlog.consumers.projection import Projection
from agentlog.producers import Recorder
from agentlog.settings import Settings

pytestmark = pytest.mark.kafka
GROUP = "counter"


class CountsMessages(Projection):
    """Counts user messages per conversation; while `broken`, fails on "boom"."""

    name = "counts_messages"
    tables = (
        Table(
            "message_counts",
            key=("conversation_id",),
            columns={"conversation_id": "text", "messages": "bigint"},
            key_of=lambda e: (e.conversation_id,),
        ),
    )
    broken = True

    @handles("user_message")
    def count(self, event, state) -> None:  # type: ignore[no-untyped-def]
        if self.broken and event.payload["text"] == "boom":
            raise ValueError("boom is not a message")
        state.row("message_counts", (event.conversation_id,))["messages"] += 1


def project(settings: Settings, url: str, broken: bool) -> int:
    projection = CountsMessages()
    projection.broken = broken
    with open_sink(url) as sink:
        ProjectionRunner(settings, sink, [projection], group=GROUP).run(once=True)
        rows = sink.query("SELECT messages FROM message_counts WHERE conversation_id = 'c1'")
    return int(rows[0][0])


def cli(settings: Settings, tmp_path: Path, *args: str):  # type: ignore[no-untyped-def]
    return agentlog(
        "--bootstrap",
        settings.bootstrap_servers,
        "--topic-prefix",
        settings.topic_prefix,
        *args,
        state_dir=tmp_path,
    )


def test_a_projection_letter_is_shown_redriven_once_and_purged(
    settings: Settings, tmp_path: Path
) -> None:
    url = f"duckdb:{tmp_path / 'sink.duckdb'}"
    with Recorder(settings) as recorder:
        recorder.user_message("c1", "hello")
        recorder.user_message("c1", "boom")
    assert project(settings, url, broken=True) == 1
    (letter,) = dead_letter_states(settings).visible()
    assert (letter.kind, letter.group, letter.state) == (dl.PROJECTION, GROUP, dl.OPEN)

    listed = json.loads(cli(settings, tmp_path, "dlq", "list", "--format", "json").out)
    assert [(x["id"], x["kind"], x["state"]) for x in listed] == [
        (letter.id, dl.PROJECTION, dl.OPEN)
    ]
    assert "boom is not a message" in listed[0]["error"]
    shown = cli(settings, tmp_path, "dlq", "show", letter.id)
    assert shown.code == 0, shown.err
    for header in (dl.CONNECT_TOPIC, dl.CONNECT_EXCEPTION_CLASS, dl.ORIGIN_OFFSET, dl.ERROR):
        assert f"  {header}: " in shown.out
    assert '"text": "boom"' in shown.out
    # The event's time as people read it (ISO 8601 UTC), not raw microseconds.
    assert re.search(r'"occurred_at": "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"', shown.out)
    as_json = json.loads(cli(settings, tmp_path, "dlq", "show", letter.id, "--format", "json").out)
    assert as_json["event"]["occurred_at"].endswith("Z")
    other_group = cli(settings, tmp_path, "dlq", "list", "--group", "nobody")
    assert other_group.out.strip() == "no dead letters of group nobody"

    redriven = cli(settings, tmp_path, "dlq", "redrive", letter.id)
    assert redriven.code == 0 and "redriven to" in redriven.out, redriven.err
    again = cli(settings, tmp_path, "dlq", "redrive", letter.id)
    assert again.code == 0 and "nothing done" in again.out
    # A redrive sent twice all the same (two people at once): the same event id twice.
    sender = dl.DeadLetters(settings, GROUP)
    sender.send_back(letter, 10)
    sender.close()
    assert project(settings, url, broken=False) == 2
    assert dead_letter_states(settings).find(letter.id).state == dl.REDRIVEN

    purged = cli(settings, tmp_path, "dlq", "purge", letter.id)
    assert purged.code == 0, purged.err
    assert dead_letter_states(settings).visible() == []
    assert letter.id in cli(settings, tmp_path, "dlq", "list", "--all").out


def test_dlq_says_in_one_line_when_no_broker_answers(tmp_path: Path) -> None:
    run = agentlog("--bootstrap", "127.0.0.1:1", "dlq", "list", state_dir=tmp_path, timeout=60)
    assert run.code != 0
    (line,) = run.err.strip().splitlines()
    assert line.startswith("error: Kafka at 127.0.0.1:1 did not answer")


def test_skip_is_for_trigger_letters(settings: Settings, tmp_path: Path) -> None:
    url = f"duckdb:{tmp_path / 'sink.duckdb'}"
    with Recorder(settings) as recorder:
        recorder.user_message("c1", "boom")
    _project_failing(settings, url)
    (letter,) = dead_letter_states(settings).visible()
    run = cli(settings, tmp_path, "dlq", "skip", letter.id)
    assert run.code != 0 and "skip is for trigger letters" in run.err


def _project_failing(settings: Settings, url: str) -> None:
    with open_sink(url) as sink:
        ProjectionRunner(settings, sink, [CountsMessages()], group=GROUP).run(once=True)
