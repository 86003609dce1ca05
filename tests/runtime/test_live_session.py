"""The session a trigger handler gets: the model through the agents' `llm`, recorded;
the customer's messages so far; the triggering message not recorded twice."""

from __future__ import annotations

from typing import Any, cast

import pytest

from agentlog.consumers.projection import RecordedEvent
from agentlog.consumers.triggers import Trigger
from agentlog.demo.world import World
from agentlog.errors import ConfigurationError
from agentlog.producers import Recorder, ToolClient
from agentlog.runtime import LiveSession, Transcripts


class Calls:
    """Stands in for the recorder: keeps what it was asked to record."""

    def __init__(self) -> None:
        self.made: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, method: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> str:
            self.made.append((method, args, kwargs))
            return f"id-{len(self.made)}"

        return record


def event(kind: str, offset: int, conversation: str = "c1", **payload: Any) -> RecordedEvent:
    return RecordedEvent(
        f"e{offset}", conversation, 0, kind, payload, {}, None, None, None, "t", 0, offset
    )


def session(trigger_event: RecordedEvent, calls: Calls, **kwargs: Any) -> LiveSession:
    trigger = Trigger(trigger_event, "support", "handler", 1)
    return LiveSession(trigger, cast(Recorder, calls), cast(ToolClient, None), 1.0, **kwargs)


def test_the_model_answers_through_the_agents_llm_and_is_recorded() -> None:
    world = World.of(1, 1)
    calls = Calls()

    def llm(messages: Any, *, model: str, agent: str, conversation_id: str, **_: Any) -> Any:
        assert conversation_id == "c1"
        return world.llm(messages, model, agent)

    live = session(event("intent_identified", 3, intent="billing"), calls, llm=llm)
    text = live.llm([{"role": "user", "content": "hi"}], model="gpt-4o-mini", agent="triage")

    (method, args, kwargs) = calls.made[0]
    assert method == "llm_call" and args == ("c1",)
    assert kwargs["output_text"] == text and kwargs["request_model"] == "gpt-4o-mini"
    assert kwargs["provider"] == "openai" and kwargs["input_tokens"] > 0
    assert kwargs["causation_id"] == "e3"


def test_a_text_answer_is_recorded_with_the_measured_latency() -> None:
    calls = Calls()
    live = session(event("user_message", 1, text="hi"), calls, llm=lambda m, **_: "hello")
    assert live.llm([], model="m", agent="a", provider="local") == "hello"
    kwargs = calls.made[0][2]
    assert kwargs["provider"] == "local" and kwargs["latency_ms"] >= 0


def test_without_an_llm_asking_the_model_says_what_to_declare() -> None:
    live = session(event("user_message", 1, text="hi"), Calls())
    with pytest.raises(ConfigurationError, match=r"Agents\(\.\.\., llm=my_model\)"):
        live.llm([], model="m", agent="triage")


def test_the_customers_messages_so_far_and_the_trigger_recorded_once() -> None:
    transcripts = Transcripts()
    calls = Calls()
    first = session(event("user_message", 1, text="refund please"), calls, transcripts=transcripts)
    assert first.user_messages == ["refund please"]
    first.user_message("refund please")  # the channel recorded it already
    assert calls.made == []

    later = event("user_message", 9, text="thanks")
    assert transcripts.note(later) == 1 and transcripts.note(later) == 1  # noted once
    between = session(
        event("intent_identified", 5, intent="billing"), calls, transcripts=transcripts
    )
    assert between.user_messages == ["refund please"]  # up to its trigger
    last = session(later, calls, transcripts=transcripts)
    assert last.user_messages == ["refund please", "thanks"]
    last.user_message("something else")
    assert [m for m, _, _ in calls.made] == ["user_message"]
