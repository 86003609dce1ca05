"""Every event type's effect on every column of every built-in projection, without a
broker: each event is encoded and decoded as the runner would, folded onto a known row,
and the whole row compared (a column not named as changed must not change)."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from helpers.sample_events import BASE, PAYLOADS

from agentlog import events as ev
from agentlog.consumers.fold import fold
from agentlog.consumers.projections import ConversationIndex, Conversations, ToolCalls
from agentlog.events import EVENT_TYPES
from agentlog.recorded import Position, RecordedEvent, event_of
from agentlog.serde import decode, encode_event, micros_of

CID = "conv-h"
T0 = micros_of(BASE)
CONVERSATIONS = Conversations.tables[0]
TOOL_CALLS = ToolCalls.tables[0]
INDEX = ConversationIndex.tables[0]
BY_TYPE = {p.event_type: p for p in PAYLOADS}


def event(payload: ev.Payload, *, at: int = T0 + 3_000, offset: int = 40, n: int = 0):
    """`payload` as the runner hands it to handlers: encoded, decoded, positioned."""
    record = ev.Event(
        event_id=f"00000000-0000-4000-8000-{offset:06d}{n:06d}",
        conversation_id=CID,
        occurred_at=BASE + timedelta(microseconds=at - T0),
        source=ev.Source(service="support", agent="billing"),
        payload=payload,
    )
    return event_of(
        decode(encode_event(record)), Position("agentlog.events", 2, offset, at // 1000)
    )


def folded_row(projection, table, before, *events: RecordedEvent, key=(CID,)):
    rows = {table.name: {key: before}} if before is not None else None
    result = fold([projection], events, rows)
    assert not result.failed
    return result.changed[table.name].get(key)


# -- conversations ------------------------------------------------------------------------

CONVERSATION_BEFORE = dict(
    CONVERSATIONS.new_row((CID,)),
    channel="phone",
    user_id="u-0",
    intent="greeting",
    current_agent="triage",
    agents=["triage"],
    turns=2,
    open_tool_calls=1,
    tool_calls=1,
    llm_calls=1,
    input_tokens=100,
    output_tokens=10,
    first_activity=T0 + 1_000,
    last_activity=T0 + 2_000,
    events=5,
)

# What each event type changes beyond what every event changes (one more event, the
# later last activity); the sample payloads are in tests/helpers/sample_events.py.
CONVERSATION_EFFECTS: dict[str, dict] = {
    "conversation_started": {"channel": "web_chat", "user_id": "u-1"},
    "conversation_ended": {"status": "ended", "outcome": "escalated"},
    "system_prompt": {},  # its agent, triage, is known already
    "tools_declared": {"agents": ["triage", "billing"]},
    "user_message": {"turns": 3},
    "agent_message": {"turns": 3, "current_agent": "billing", "agents": ["triage", "billing"]},
    "llm_call": {
        "llm_calls": 2,
        "input_tokens": 1334,
        "output_tokens": 66,
        "current_agent": "billing",
        "agents": ["triage", "billing"],
    },
    # A failed call is no call made: it names its agent, nothing more.
    "llm_call_failed": {"agents": ["triage", "billing"]},
    "tool_call_requested": {"open_tool_calls": 2, "tool_calls": 2, "agents": ["triage", "billing"]},
    "tool_call_completed": {"open_tool_calls": 0},
    "tool_call_failed": {"open_tool_calls": 0, "tool_errors": 1},
    "intent_identified": {"intent": "billing"},
    "handoff": {"current_agent": "billing", "agents": ["triage", "billing"]},
    "escalation": {"escalations": 1, "agents": ["triage", "billing"]},
    "saga_step_started": {},
    "saga_step_completed": {},
    "saga_step_compensated": {},
    "saga_started": {},
    "saga_step_failed": {},
    "saga_ended": {},  # a saga's outcome is not the conversation's
}


def test_every_event_type_has_a_stated_effect() -> None:
    assert set(CONVERSATION_EFFECTS) == set(EVENT_TYPES) == set(BY_TYPE)
    assert set(TOOL_CALL_EFFECTS) == {t for t in EVENT_TYPES if t.startswith("tool_call")}


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_each_event_type_on_an_existing_conversation(event_type: str) -> None:
    after = folded_row(
        Conversations(), CONVERSATIONS, CONVERSATION_BEFORE, event(BY_TYPE[event_type])
    )
    expected = dict(
        CONVERSATION_BEFORE,
        events=6,
        last_activity=T0 + 3_000,
        **CONVERSATION_EFFECTS[event_type],
    )
    assert after == expected


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_each_event_type_starts_a_conversation_it_is_the_first_of(event_type: str) -> None:
    after = folded_row(Conversations(), CONVERSATIONS, None, event(BY_TYPE[event_type]))
    assert after["conversation_id"] == CID
    assert after["status"] == ("ended" if event_type == "conversation_ended" else "active")
    assert (after["first_activity"], after["last_activity"], after["events"]) == (
        T0 + 3_000,
        T0 + 3_000,
        1,
    )
    assert after["open_tool_calls"] == (1 if event_type == "tool_call_requested" else 0)


def test_status_and_outcome_are_apart() -> None:
    escalation, ended = BY_TYPE["escalation"], ev.ConversationEnded(outcome="resolved")
    only_escalated = folded_row(Conversations(), CONVERSATIONS, None, event(escalation))
    assert (only_escalated["status"], only_escalated["outcome"]) == ("active", None)
    assert only_escalated["escalations"] == 1
    # Escalated, then resolved by the human it went to: the end decides the outcome.
    resolved = folded_row(
        Conversations(), CONVERSATIONS, None, event(escalation), event(ended, offset=41)
    )
    assert (resolved["status"], resolved["outcome"], resolved["escalations"]) == (
        "ended",
        "resolved",
        1,
    )
    # An escalation recorded after the end changes neither.
    late = folded_row(
        Conversations(), CONVERSATIONS, None, event(ended), event(escalation, offset=41)
    )
    assert (late["status"], late["outcome"], late["escalations"]) == ("ended", "resolved", 1)


def test_a_retried_tool_call_is_one_call_and_open_calls_never_go_below_zero() -> None:
    retry = ev.ToolCallRequested(
        tool_call_id="call_1", tool_name="lookup_invoice", arguments_json="{}", attempt=2
    )
    after = folded_row(
        Conversations(),
        CONVERSATIONS,
        None,
        event(BY_TYPE["tool_call_requested"]),
        event(BY_TYPE["tool_call_failed"], offset=41),
        event(retry, offset=42),
        event(BY_TYPE["tool_call_completed"], offset=43),
        event(BY_TYPE["tool_call_completed"], offset=44, n=1),  # a stray second completion
    )
    assert (after["tool_calls"], after["tool_errors"], after["open_tool_calls"]) == (1, 1, 0)


def test_a_handoff_names_both_agents_in_the_order_they_appeared() -> None:
    handoff = ev.Handoff(from_agent="sales", to_agent="support")
    after = folded_row(Conversations(), CONVERSATIONS, CONVERSATION_BEFORE, event(handoff))
    assert after["agents"] == ["triage", "sales", "support"]
    assert after["current_agent"] == "support"


# -- tool_calls ---------------------------------------------------------------------------

CALL_KEY = (CID, "call_1")
CALL_BEFORE = dict(
    TOOL_CALLS.new_row(CALL_KEY),
    tool_name="lookup_invoice",
    agent="billing",
    arguments_json='{"invoice_id":"INV-0"}',
    status="failed",
    attempts=1,
    failures=1,
    latency_ms=5000.0,
    total_duration_ms=5000.0,
    error_type="TimeoutError",
    error_message="slow",
    requested_at=T0 + 1_000,
    finished_at=T0 + 2_000,
)
TOOL_CALL_EFFECTS: dict[str, dict] = {
    "tool_call_requested": {  # attempt 1 again, by the same agent
        "arguments_json": '{"invoice_id":"INV-1"}',
        "status": "requested",
    },
    "tool_call_completed": {
        "status": "completed",
        "attempts": 2,
        "latency_ms": 73.5,
        "total_duration_ms": 5073.5,
        "result_json": '{"total":129.5}',
        "finished_at": T0 + 3_000,
    },
    "tool_call_failed": {
        "status": "failed",
        "failures": 2,
        "latency_ms": 5000.0,
        "total_duration_ms": 10000.0,
        "error_message": "no answer in 5000 ms",
        "finished_at": T0 + 3_000,
    },
}


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_each_event_type_on_an_existing_tool_call(event_type: str) -> None:
    after = folded_row(
        ToolCalls(), TOOL_CALLS, CALL_BEFORE, event(BY_TYPE[event_type]), key=CALL_KEY
    )
    if event_type in TOOL_CALL_EFFECTS:
        assert after == dict(CALL_BEFORE, **TOOL_CALL_EFFECTS[event_type])
    else:
        assert after is None  # not a tool call's event: no row changes


def test_a_tool_call_from_request_to_completion() -> None:
    requested, failed, completed = (
        BY_TYPE[t] for t in ("tool_call_requested", "tool_call_failed", "tool_call_completed")
    )
    retry = ev.ToolCallRequested(
        tool_call_id="call_1", tool_name="lookup_invoice", arguments_json="{}", attempt=2
    )
    after = folded_row(
        ToolCalls(),
        TOOL_CALLS,
        None,
        event(requested, at=T0 + 10),
        event(failed, at=T0 + 20, offset=41),
        event(retry, at=T0 + 30, offset=42),
        event(completed, at=T0 + 40, offset=43),
        key=CALL_KEY,
    )
    assert after == {
        "conversation_id": CID,
        "tool_call_id": "call_1",
        "tool_name": "lookup_invoice",
        "agent": "billing",  # the retry named no agent: the first one stays
        "arguments_json": "{}",
        "status": "completed",
        "attempts": 2,
        "failures": 1,
        "latency_ms": 73.5,
        "total_duration_ms": 5073.5,
        "result_json": '{"total":129.5}',
        "error_type": "TimeoutError",  # the last failure, kept after a retry succeeded
        "error_message": "no answer in 5000 ms",
        "requested_at": T0 + 10,
        "finished_at": T0 + 40,
    }


# -- conversation_index -------------------------------------------------------------------

INDEX_BEFORE = dict(
    INDEX.new_row((CID,)),
    topic="agentlog.events",
    partition=2,
    first_offset=10,
    last_offset=20,
    event_count=5,
    first_time=T0 + 1_000,
    last_time=T0 + 2_000,
)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_each_event_type_on_an_existing_index_entry(event_type: str) -> None:
    after = folded_row(ConversationIndex(), INDEX, INDEX_BEFORE, event(BY_TYPE[event_type]))
    assert after == dict(INDEX_BEFORE, last_offset=40, event_count=6, last_time=T0 + 3_000)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_each_event_type_starts_an_index_entry(event_type: str) -> None:
    after = folded_row(ConversationIndex(), INDEX, None, event(BY_TYPE[event_type]))
    assert after == {
        "conversation_id": CID,
        "topic": "agentlog.events",
        "partition": 2,
        "first_offset": 40,
        "last_offset": 40,
        "event_count": 1,
        "first_time": T0 + 3_000,
        "last_time": T0 + 3_000,
    }


# -- timing and counts: one definition ----------------------------------------------------


def test_conversations_and_the_index_agree_on_times_and_counts_out_of_order() -> None:
    """Services' clocks disagree: events are applied in log order, not time order."""
    rng = random.Random(7)
    times = [T0 + rng.randrange(1_000_000) for _ in range(40)]
    events = [
        event(BY_TYPE[rng.choice(EVENT_TYPES)], at=at, offset=100 + n, n=n)
        for n, at in enumerate(times)
    ]
    result = fold([Conversations(), ConversationIndex()], events)
    conversation = result.changed[CONVERSATIONS.name][(CID,)]
    entry = result.changed[INDEX.name][(CID,)]
    assert (conversation["first_activity"], conversation["last_activity"]) == (
        min(times),
        max(times),
    )
    assert (entry["first_time"], entry["last_time"]) == (min(times), max(times))
    assert conversation["events"] == entry["event_count"] == 40
    assert (entry["first_offset"], entry["last_offset"]) == (100, 139)
