"""The Anthropic client wrapper (`agentlog.integrations.anthropic.record`) passes the
integration contract with the real `anthropic` package talking to the canned model
server: Messages, sync (`create`, `create(stream=True)`) and async (`messages.stream()`)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anthropic
from anthropic import Anthropic, AsyncAnthropic

from agentlog.integrations.anthropic import record
from agentlog.testing import IntegrationContract, Session
from agentlog.testing.integration_contract import run_tool
from agentlog.testing.model_server import MODEL_RATE_LIMITED, SCRIPT

TOOLS = [
    {"name": t["name"], "description": t["description"], "input_schema": t["parameters"]}
    for t in SCRIPT.tools()
]


def answer_turn(session: Session, content: list[Any]) -> list[dict[str, Any]]:
    """Agent code running the model's tool_use blocks, recorded by hand as tool calls;
    their results as the next user message's content."""
    results = []
    for block in content:
        if block.type != "tool_use":
            continue
        with session.recorder.tool_call(
            block.name, block.input, tool_call_id=block.id, agent=session.agent
        ) as call:
            call.result = run_tool(block.name, block.input)
        results.append(
            {"type": "tool_result", "tool_use_id": block.id, "content": json.dumps(call.result)}
        )
    return results


class TestMessages(IntegrationContract):
    provider = "anthropic"
    finish_reasons = ("tool_use", "end_turn")

    def client(self, session: Session) -> Anthropic:
        bare = Anthropic(base_url=session.server.anthropic_url, api_key="test", max_retries=0)
        return record(bare, session.recorder, agent=session.agent)

    def converse(self, session: Session, model: str, *, stream: bool = False) -> None:
        client = self.client(session)
        messages: list[Any] = [{"role": "user", "content": SCRIPT.question}]
        with session.recorder.conversation(session.conversation_id):
            for _ in range(3):
                if stream:
                    events = client.messages.create(
                        model=model, max_tokens=256, messages=messages, tools=TOOLS, stream=True
                    )
                    content = _assembled(events)
                else:
                    reply = client.messages.create(
                        model=model, max_tokens=256, messages=messages, tools=TOOLS
                    )
                    content = reply.content
                results = answer_turn(session, content)
                if not results:
                    assert [b.text for b in content] == [SCRIPT.answer]
                    return
                messages.append({"role": "assistant", "content": content})
                messages.append({"role": "user", "content": results})
        raise AssertionError("the model never answered")

    def rate_limited(self, session: Session) -> BaseException:
        try:
            with session.recorder.conversation(session.conversation_id):
                self.client(session).messages.create(
                    model=MODEL_RATE_LIMITED,
                    max_tokens=16,
                    messages=[{"role": "user", "content": "hi"}],
                )
        except anthropic.RateLimitError as error:
            return error
        raise AssertionError("the 429 did not reach the caller")


def _assembled(events: Any) -> list[Any]:
    """Raw stream events to content blocks, as agent code reading `stream=True` does."""
    from anthropic.types import TextBlock, ToolUseBlock

    blocks: dict[int, dict[str, Any]] = {}
    for event in events:
        if event.type == "content_block_start":
            blocks[event.index] = {**event.content_block.model_dump(), "json": ""}
        elif event.type == "content_block_delta":
            if event.delta.type == "text_delta":
                blocks[event.index]["text"] += event.delta.text
            elif event.delta.type == "input_json_delta":
                blocks[event.index]["json"] += event.delta.partial_json
    content: list[Any] = []
    for _, block in sorted(blocks.items()):
        if block["type"] == "text":
            content.append(TextBlock(type="text", text=block["text"]))
        else:
            content.append(
                ToolUseBlock(
                    type="tool_use",
                    id=block["id"],
                    name=block["name"],
                    input=json.loads(block["json"] or "{}"),
                )
            )
    return content


class TestAsyncMessagesStream(IntegrationContract):
    """AsyncAnthropic with `messages.stream()`, the conversation passed explicitly."""

    provider = "anthropic"
    finish_reasons = ("tool_use", "end_turn")

    def client(self, session: Session) -> AsyncAnthropic:
        bare = AsyncAnthropic(base_url=session.server.anthropic_url, api_key="test", max_retries=0)
        return record(
            bare, session.recorder, agent=session.agent, conversation_id=session.conversation_id
        )

    def converse(self, session: Session, model: str, *, stream: bool = False) -> None:
        asyncio.run(self._converse(session, model, stream))

    async def _converse(self, session: Session, model: str, stream: bool) -> None:
        client = self.client(session)
        messages: list[Any] = [{"role": "user", "content": SCRIPT.question}]
        for _ in range(3):
            if stream:
                async with client.messages.stream(
                    model=model, max_tokens=256, messages=messages, tools=TOOLS
                ) as events:
                    async for _event in events:
                        pass
                    content = (await events.get_final_message()).content
            else:
                reply = await client.messages.create(
                    model=model, max_tokens=256, messages=messages, tools=TOOLS
                )
                content = reply.content
            with session.recorder.conversation(session.conversation_id):
                results = answer_turn(session, content)
            if not results:
                assert [b.text for b in content] == [SCRIPT.answer]
                return
            messages.append({"role": "assistant", "content": content})
            messages.append({"role": "user", "content": results})
        raise AssertionError("the model never answered")

    def rate_limited(self, session: Session) -> BaseException:
        async def call() -> BaseException:
            try:
                await self.client(session).messages.create(
                    model=MODEL_RATE_LIMITED,
                    max_tokens=16,
                    messages=[{"role": "user", "content": "hi"}],
                )
            except anthropic.RateLimitError as error:
                return error
            raise AssertionError("the 429 did not reach the caller")

        return asyncio.run(call())
