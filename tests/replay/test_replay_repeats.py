"""A conversation imported twice holds each event id twice on the log: replay folds each
id once (as the projector does) and shows the second copies as repeats, not as new
events, in every format."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from agentlog.consumers.projection import RecordedEvent
from agentlog.replay import replay_conversation
from agentlog.replay.export import as_json
from agentlog.replay.html import timeline_page
from agentlog.replay.transcript import transcript
from agentlog.settings import Settings

CID = "imp-000001"


def _event(n: int, offset: int, kind: str, **payload) -> RecordedEvent:
    return RecordedEvent(
        f"id-{n}", CID, 1_000_000 * offset, kind, payload, {"service": "import"}, None, None,
        None, "agentlog.events", 2, offset,
    )  # fmt: skip


def _imported_once(base: int) -> list[RecordedEvent]:
    return [
        _event(0, base, "conversation_started", channel="import", user_id=None),
        _event(1, base + 1, "user_message", text="hi", user_id=None),
        _event(2, base + 2, "agent_message", agent="assistant", text="hello"),
        _event(3, base + 3, "conversation_ended", outcome="imported", reason=None),
    ]


@dataclass
class _Archive:
    events: list[RecordedEvent] = field(default_factory=list)
    where: str = "/archive"

    def conversation_events(self, topic: str, conversation_id: str) -> list[RecordedEvent]:
        return self.events

    def archived_up_to(self, topic: str) -> dict[int, int]:
        return {2: self.events[-1].offset + 1}


def _replay(events: list[RecordedEvent]):
    return replay_conversation(Settings(), CID, source="archive", archive=_Archive(events))


def test_an_event_imported_twice_is_folded_once_and_shown_as_a_repeat() -> None:
    once = _replay(_imported_once(0))
    twice = _replay(_imported_once(0) + _imported_once(10))
    assert twice.state == once.state
    assert [e.offset for e in twice.events] == [0, 1, 2, 3]
    assert twice.repeat_of == {10: 0, 11: 1, 12: 2, 13: 3}

    lines = list(transcript(twice))
    assert lines[0].startswith(f"conversation {CID}: 4 events")
    assert "4 records repeat earlier events" in lines[0]
    repeats = [line for line in lines if "repeat of p2@" in line]
    assert len(repeats) == 4 and "repeat of p2@0" in repeats[0]

    document = json.loads(as_json(twice))
    assert document["events_recorded"] == 4
    assert document["repeated_records"] == 4
    marked = [e.get("repeat_of_offset") for e in document["events"]]
    assert marked == [None] * 4 + [0, 1, 2, 3]

    page = timeline_page(twice)
    assert "4 records repeat earlier events" in page


def test_transcript_positions_line_up_past_offset_nine() -> None:
    events = _imported_once(7) + [_event(9, 11, "user_message", text="later", user_id=None)]
    lines = list(transcript(_replay(events)))
    event_lines = [line for line in lines if "p2@" in line]
    columns = {re.search(r"p2@\d+ +", line).end() for line in event_lines}  # type: ignore[union-attr]
    assert len(columns) == 1, event_lines
