"""Re-running unmodified OpenAI-client agent code on its recording: recorded live with
the real `openai` client against the model server, then re-run with the server stopped
(nothing real can answer) through `agentlog.integrations.openai.serve`."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from openai import AsyncOpenAI, OpenAI

from agentlog.integrations.openai import Serving, record, serve
from agentlog.producers import Recorder
from agentlog.replay import Diverged, RerunReport, replay_conversation, rerun_start
from agentlog.replay.diff import diff_conversations
from agentlog.settings import Settings
from agentlog.testing.integration_contract import run_tool
from agentlog.testing.model_server import MODEL_TOOL, SCRIPT, ModelServer

TOOLS = [{"type": "function", "function": tool} for tool in SCRIPT.tools()]


def _add(chunk: Any, text: list[str], calls: dict[int, dict[str, Any]]) -> None:
    """One streamed chunk into the text and the tool calls (by index) so far."""
    for choice in chunk.choices:
        text.append(choice.delta.content or "")
        for call in choice.delta.tool_calls or ():
            held = calls.setdefault(
                call.index,
                {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
            )
            held["id"] = held["id"] or call.id or ""
            held["function"]["name"] += call.function.name or ""
            held["function"]["arguments"] += call.function.arguments or ""


def _assembled(text: list[str], calls: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The assistant message a streamed answer makes, as agent code sends it back."""
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return message


def _streamed(chunks: Any) -> dict[str, Any]:
    text: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        _add(chunk, text, calls)
    return _assembled(text, calls)


def _message(answer: Any) -> dict[str, Any]:
    return answer.choices[0].message.model_dump(exclude_none=True)  # type: ignore[no-any-return]


def billing_agent(
    client: OpenAI,
    *,
    stream: bool = False,
    system: str = SCRIPT.system,
    tool: Callable[[str, Any], Any] = run_tool,
) -> str:
    """A plain tool-calling loop over the Chat Completions API: the code under re-run."""
    messages: list[Any] = [
        {"role": "system", "content": system},
        {"role": "user", "content": SCRIPT.question},
    ]
    for _ in range(4):
        if stream:
            message = _streamed(
                client.chat.completions.create(
                    model=MODEL_TOOL, messages=messages, tools=TOOLS, stream=True
                )
            )
        else:
            message = _message(
                client.chat.completions.create(
                    model=MODEL_TOOL, messages=messages, tools=TOOLS, temperature=0.2
                )
            )
        messages.append(message)
        if not message.get("tool_calls"):
            return str(message["content"])
        for call in message["tool_calls"]:
            result = tool(call["function"]["name"], json.loads(call["function"]["arguments"]))
            messages.append(
                {"role": "tool", "tool_call_id": call["id"], "content": json.dumps(result)}
            )
    raise AssertionError("the model never answered")


async def async_billing_agent(client: AsyncOpenAI, *, stream: bool = False) -> str:
    """The same loop with AsyncOpenAI."""
    messages: list[Any] = [
        {"role": "system", "content": SCRIPT.system},
        {"role": "user", "content": SCRIPT.question},
    ]
    for _ in range(4):
        if stream:
            text: list[str] = []
            calls: dict[int, dict[str, Any]] = {}
            async for chunk in await client.chat.completions.create(
                model=MODEL_TOOL, messages=messages, tools=TOOLS, stream=True
            ):
                _add(chunk, text, calls)
            message = _assembled(text, calls)
        else:
            message = _message(
                await client.chat.completions.create(
                    model=MODEL_TOOL, messages=messages, tools=TOOLS
                )
            )
        messages.append(message)
        if not message.get("tool_calls"):
            return str(message["content"])
        for call in message["tool_calls"]:
            result = run_tool(call["function"]["name"], json.loads(call["function"]["arguments"]))
            messages.append(
                {"role": "tool", "tool_call_id": call["id"], "content": json.dumps(result)}
            )
    raise AssertionError("the model never answered")


def _record_live(settings: Settings, run: Callable[[Any], Any], make: Any) -> str:
    """Run the agent live against a model server (stopped afterwards), recorded."""
    conversation_id = f"conv-{uuid.uuid4().hex[:10]}"
    with ModelServer() as server, Recorder(settings, service="live") as recorder:
        recorder.start_conversation(conversation_id, channel="chat")
        client = record(
            make(base_url=server.openai_url, api_key="test", max_retries=0),
            recorder,
            agent="billing",
        )
        with recorder.conversation(conversation_id):
            assert run(client) == SCRIPT.answer
    return conversation_id


def _rerun(
    settings: Settings,
    conversation_id: str,
    run: Callable[[Any], Any],
    make: Any,
    *,
    base_url: str = "http://127.0.0.1:9/v1",  # nothing listens: no request may leave
    fork_offset: int | None = None,
) -> RerunReport:
    """Re-run the agent on the recording, the re-run recorded as a linked conversation."""
    original = replay_conversation(settings, conversation_id)
    serving = Serving(original, fork_offset=fork_offset)
    new_id = f"{conversation_id}-rerun"
    with Recorder(settings, service="rerun") as recorder:
        recorder.start_conversation(new_id, **rerun_start(original.events, "strict", fork_offset))
        client = record(
            serve(
                make(base_url=base_url, api_key="test", max_retries=0),
                serving,
                live=fork_offset is not None,
            ),
            recorder,
            agent="billing",
        )
        with recorder.conversation(new_id):
            try:
                run(client)
            except Diverged:
                pass
    report = serving.finish()
    report.new_conversation_id, report.recorded = new_id, True
    return report


CASES = {
    "sync": (OpenAI, lambda c: billing_agent(c)),
    "sync-streamed": (OpenAI, lambda c: billing_agent(c, stream=True)),
    "async": (AsyncOpenAI, lambda c: asyncio.run(async_billing_agent(c))),
    "async-streamed": (AsyncOpenAI, lambda c: asyncio.run(async_billing_agent(c, stream=True))),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_unchanged_code_reruns_with_the_model_server_down(settings: Settings, case: str) -> None:
    make, run = CASES[case]
    conversation_id = _record_live(settings, run, make)
    report = _rerun(settings, conversation_id, run, make)
    assert report.matched, report.lines()
    assert len(report.served) == 2 and not report.unconsumed and not report.live_calls
    original = replay_conversation(settings, conversation_id)
    again = replay_conversation(settings, report.new_conversation_id)
    difference = diff_conversations(original.events, again.events)
    assert difference.identical, [s for s in difference.steps if s.kind != "same"]


def test_a_changed_system_prompt_diverges_at_the_first_call_naming_it(
    settings: Settings,
) -> None:
    conversation_id = _record_live(settings, billing_agent, OpenAI)
    report = _rerun(
        settings, conversation_id, lambda c: billing_agent(c, system="You are a pirate."), OpenAI
    )
    assert report.divergence is not None and not report.served
    first = replay_conversation(settings, conversation_id).events
    first_call = next(e for e in first if e.event_type == "llm_call")
    assert report.divergence.recorded is not None
    assert report.divergence.recorded.request.offset == first_call.offset
    message = report.divergence.message
    assert "input_messages[0] (system).parts[0].content" in message, message
    assert "You are the billing agent." in message and "You are a pirate." in message


def test_a_changed_tool_result_diverges_at_the_call_that_sends_it(settings: Settings) -> None:
    """The tool's answer goes back in the next request: that request is the divergence."""
    conversation_id = _record_live(settings, billing_agent, OpenAI)
    report = _rerun(
        settings,
        conversation_id,
        lambda c: billing_agent(c, tool=lambda name, args: {"status": "unpaid"}),
        OpenAI,
    )
    assert report.divergence is not None and len(report.served) == 1
    assert "input_messages[3] (tool).parts[0].response.status" in report.divergence.message
    assert '"paid"' in report.divergence.message and '"unpaid"' in report.divergence.message


def test_a_changed_temperature_is_named(settings: Settings) -> None:
    conversation_id = _record_live(settings, billing_agent, OpenAI)
    report = _rerun(settings, conversation_id, lambda c: billing_agent(c, stream=True), OpenAI)
    assert report.divergence is not None
    assert "request_parameters.temperature: recorded 0.2, now absent" in report.divergence.message


def test_after_the_fork_a_restarted_server_answers(settings: Settings) -> None:
    conversation_id = _record_live(settings, billing_agent, OpenAI)
    first_call = next(
        e
        for e in replay_conversation(settings, conversation_id).events
        if e.event_type == "llm_call"
    )
    with ModelServer() as restarted:
        report = _rerun(
            settings,
            conversation_id,
            billing_agent,
            OpenAI,
            base_url=restarted.openai_url,
            fork_offset=first_call.offset,
        )
    assert report.matched, report.lines()
    assert [c.request.offset for c in report.served] == [first_call.offset]
    assert report.live_calls == [f"LLM call to {MODEL_TOOL}"]
