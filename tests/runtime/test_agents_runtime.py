"""`agentlog.runtime.agents_runtime`: the trigger runtime wired as `agentlog agents run`
and the demo run it. A handler's session records through a recorder whose ids derive
from the trigger event, asks the agents' model, and has its tool calls run by the tool
workers; what it recorded is on the log when the block ends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers.workers import worker_thread

from agentlog.consumers.triggers import Agents
from agentlog.producers import Recorder
from agentlog.reader import read_partitions
from agentlog.runtime import LiveSession, agents_runtime
from agentlog.serde import decode
from agentlog.settings import Settings

pytestmark = pytest.mark.kafka


def desk_agents(asked: list[str]) -> Agents:
    def model(messages: Any, *, model: str, agent: str, **_: Any) -> str:
        asked.append(f"{agent}/{model}: {messages[-1]['content']}")
        return "the sum is"

    agents = Agents("desk", llm=model)

    @agents.on("user_message")
    def answer(event: Any, session: LiveSession) -> None:
        text = session.llm([{"role": "user", "content": event.payload["text"]}], model="m1",
                           agent="desk")  # fmt: skip
        total = session.call_tool("add", {"a": 2, "b": 3}, agent="desk")
        session.agent_message("desk", f"{text} {total}")

    return agents


def events_of(settings: Settings, conversation_id: str) -> list[dict[str, Any]]:
    records = read_partitions(settings, settings.events_topic, idle_timeout=10.0)
    events = [decode(r.value()) for r in records]
    return [e for e in events if e["conversation_id"] == conversation_id]


def test_a_handler_records_asks_the_model_and_calls_tools_through_the_wired_runtime(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTLOG_TEST_TOOL_DIR", str(tmp_path))
    with Recorder(settings, service="chat") as channel:
        asked_id = channel.user_message("c1", "what is 2 + 3?")
    asked: list[str] = []
    agents = desk_agents(asked)

    with (
        worker_thread(settings),
        agents_runtime(settings, agents, service="desk-svc", tool_timeout=30) as runtime,
    ):
        done = runtime.run(once=True)

    assert done.handled == 1
    assert asked == ["desk/m1: what is 2 + 3?"]
    events = events_of(settings, "c1")
    kinds = [e["payload"][0].removeprefix("agentlog.") for e in events]
    assert kinds[0] == "UserMessage" and kinds[-1] == "AgentMessage"
    assert {"LlmCall", "ToolCallRequested", "ToolCallCompleted"} <= set(kinds)
    reply = events[-1]
    assert reply["payload"][1]["text"] == "the sum is 5"
    assert reply["source"]["service"] == "desk-svc"
    # The model's answer and the tool request answer the message that triggered them.
    for kind in ("agentlog.LlmCall", "agentlog.ToolCallRequested"):
        event = next(e for e in events if e["payload"][0] == kind)
        assert event["source"]["service"] == "desk-svc"
        assert event["causation_id"] == asked_id

    # The same event handled again (another group) records its reply under the same id.
    with (
        worker_thread(settings),
        agents_runtime(settings, agents, service="desk-svc", group="again") as runtime,
    ):
        runtime.run(once=True)
    replies = [e for e in events_of(settings, "c1") if e["payload"][0] == "agentlog.AgentMessage"]
    assert len(replies) == 2 and replies[0]["event_id"] == replies[1]["event_id"]
