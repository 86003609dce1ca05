"""`agentlog demo`'s live phase: the demo's agents as trigger handlers, their tools on
real tool workers; a hanging tool times out, a failing one dead-letters a conversation,
whose next message waits parked until the redrive, then runs in order."""

from __future__ import annotations

import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from helpers.cli import agentlog
from helpers.kafka_python_reader import read_all

from agentlog.consumers.dead_letters import RESOLVED, dead_letter_states
from agentlog.demo.agents import support_team
from agentlog.demo.live import FAILING_TOOL, FOLLOW_UP, SLOW_TOOL, live_cast, run_live
from agentlog.demo.world import THANKS
from agentlog.recorded import Position, event_of
from agentlog.replay import rerun_recording
from agentlog.serde import decode
from agentlog.settings import Settings

pytestmark = pytest.mark.kafka


def test_the_live_conversations_end_and_the_dead_letter_is_redriven_in_order(
    settings: Settings, bootstrap: str
) -> None:
    result = run_live(settings, seed=7, count=6, workers=2)

    assert sorted(result.outcomes) == sorted(result.conversations)
    assert len(result.conversations) == 6
    assert result.dead_lettered == 1 and result.parked == 1
    parked = result.letter_conversation
    assert result.outcomes[parked] == "resolved"

    records = read_all(bootstrap, settings.events_topic)
    events = [
        event_of(
            decode(r.value), Position(settings.events_topic, r.partition, r.offset, r.timestamp)
        )
        for r in records
    ]
    by_conversation = defaultdict(list)
    for event in events:  # in (partition, offset) order: each conversation's log order
        by_conversation[event.conversation_id].append(event)
    assert set(by_conversation) == set(result.conversations)

    # The failed conversation: the refund failed on every handler attempt, the
    # customer's next message was written before any answer, and after the redrive
    # the specialist answered before that message was taken up and the end recorded.
    mine = by_conversation[parked]
    kinds = [e.event_type for e in mine]
    follow_up = next(
        i
        for i, e in enumerate(mine)
        if e.event_type == "user_message" and e.payload["text"] == FOLLOW_UP
    )
    refunds = [
        e for e in mine if e.event_type in ("tool_call_completed", "tool_call_failed")
        and e.payload["tool_name"] == FAILING_TOOL
    ]  # fmt: skip
    assert [e.event_type for e in refunds[:-1]] == ["tool_call_failed"] * (len(refunds) - 1)
    assert refunds[-1].event_type == "tool_call_completed"
    assert mine.index(refunds[-1]) > follow_up  # the redrive ran after the customer wrote
    reply = max(i for i, k in enumerate(kinds) if k == "agent_message")
    assert follow_up < reply < kinds.index("conversation_ended")
    assert kinds.count("conversation_ended") == 1
    assert mine[-1].event_type == "conversation_ended"
    assert mine[-1].payload["outcome"] == "resolved"

    # Every tool call id ends once; the hanging tool's calls failed with a timeout.
    endings: dict[str, list[str]] = defaultdict(list)
    requested: set[str] = set()
    for event in events:
        if event.event_type == "tool_call_requested":
            requested.add(event.payload["tool_call_id"])
        elif event.event_type in ("tool_call_completed", "tool_call_failed"):
            endings[event.payload["tool_call_id"]].append(event.event_type)
    assert requested == set(endings)
    assert all(len(kinds) == 1 for kinds in endings.values())
    slow = [
        e for e in events
        if e.event_type == "tool_call_failed" and e.payload["tool_name"] == SLOW_TOOL
    ]  # fmt: skip
    assert slow and all(e.payload["error_type"] == "TimeoutError" for e in slow)
    assert result.tool_calls["timed out"] >= 1
    timed_out_conversations = {e.conversation_id for e in slow}
    assert all(result.outcomes[c] == "escalated" for c in timed_out_conversations)

    # The letter is resolved: nothing left open or parked.
    states = dead_letter_states(settings, idle_timeout=5.0)
    (letter,) = [lt for lt in states.letters.values() if lt.group == result.group]
    assert letter.state == RESOLVED

    # The same agent code ran: a conversation without failures re-runs on its recording.
    clean = next(
        c
        for c in result.conversations
        if c != parked and c not in timed_out_conversations and result.outcomes[c] == "resolved"
    )
    report = rerun_recording(by_conversation[clean], support_team, mode="strict")
    assert report.matched, report.lines()
    assert report.divergence is None and not report.unconsumed


def test_the_live_cast_has_one_refund_and_one_hanging_order() -> None:
    cast = live_cast(seed=3, count=8)
    assert len(cast) == 8
    plans = [{name for name, _ in world.plan()} for world in cast.values()]
    assert sum(FAILING_TOOL in p for p in plans) == 1
    assert sum(SLOW_TOOL in p for p in plans) >= 1
    assert all(w.customer.messages[1:] == [THANKS] for w in cast.values())
    again = live_cast(seed=3, count=8)
    assert [w.customer for w in again.values()] == [w.customer for w in cast.values()]


def test_demo_names_the_live_phase_and_status_shows_the_runtime_caught_up(
    bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"live{uuid.uuid4().hex[:8]}."
    run = agentlog(
        "--bootstrap", bootstrap, "--topic-prefix", prefix, "demo", "-n", "10", "--seed", "4",
        state_dir=tmp_path,
    )  # fmt: skip
    assert run.code == 0, run.err
    assert "live conversations through the agents runtime" in run.err
    assert "dead letter " in run.out and "is parked" in run.out
    assert "redriven" in run.out
    # On a topic prefix of its own, the demo's groups are its own too.
    group = f"agentlog-agents-acme-support.{prefix.rstrip('.')}"
    assert f"status of {group}: lag 0, dlq 0, parked conversations 0" in run.out
    assert "agentlog dlq list --all" in run.out
