"""The OpenAI client wrapper (`agentlog.integrations.openai.record`) passes the
integration contract with the real `openai` package talking to the canned model server:
Chat Completions and Responses, sync and async, streamed and not."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
from openai import AsyncOpenAI, OpenAI

from agentlog.integrations.openai import record
from agentlog.testing import IntegrationContract, Session
from agentlog.testing.integration_contract import run_tool
from agentlog.testing.model_server import MODEL_RATE_LIMITED, SCRIPT

CHAT_TOOLS = [{"type": "function", "function": tool} for tool in SCRIPT.tools()]
RESPONSES_TOOLS = [{"type": "function", **tool} for tool in SCRIPT.tools()]


def run_calls(session: Session, calls: list[tuple[str, str, str]]) -> list[tuple[str, Any]]:
    """Agent code running the model's tool calls, recorded by hand as tool calls."""
    results = []
    for call_id, name, arguments in calls:
        parsed = json.loads(arguments)
        with session.recorder.tool_call(
            name, parsed, tool_call_id=call_id, agent=session.agent
        ) as call:
            call.result = run_tool(name, parsed)
        results.append((call_id, call.result))
    return results


def chat_answer(stream: Any) -> tuple[str, list[tuple[str, str, str]], dict[str, Any]]:
    """A streamed Chat Completions answer, assembled as agent code does: text, calls, and
    the assistant message to send back."""
    text, calls = [], {}
    for chunk in stream:
        for choice in chunk.choices:
            text.append(choice.delta.content or "")
            for call in choice.delta.tool_calls or ():
                held = calls.setdefault(call.index, ["", "", ""])
                held[0] = held[0] or call.id or ""
                held[1] = held[1] or (call.function.name or "")
                held[2] += call.function.arguments or ""
    found = [tuple(calls[i]) for i in sorted(calls)]
    message = {
        "role": "assistant",
        "content": "".join(text) or None,
        "tool_calls": [
            {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
            for i, n, a in found
        ],
    }
    return "".join(text), found, message  # type: ignore[return-value]


class TestChatCompletions(IntegrationContract):
    provider = "openai"
    finish_reasons = ("tool_calls", "stop")

    def client(self, session: Session) -> OpenAI:
        bare = OpenAI(base_url=session.server.openai_url, api_key="test", max_retries=0)
        return record(bare, session.recorder, agent=session.agent)

    def converse(self, session: Session, model: str, *, stream: bool = False) -> None:
        client = self.client(session)
        messages: list[Any] = [{"role": "user", "content": SCRIPT.question}]
        with session.recorder.conversation(session.conversation_id):
            for _ in range(3):
                if stream:
                    chunks = client.chat.completions.create(
                        model=model, messages=messages, tools=CHAT_TOOLS, stream=True
                    )
                    text, calls, message = chat_answer(chunks)
                else:
                    answer = client.chat.completions.create(
                        model=model, messages=messages, tools=CHAT_TOOLS
                    )
                    message = answer.choices[0].message
                    text = message.content or ""
                    calls = [
                        (c.id, c.function.name, c.function.arguments)
                        for c in message.tool_calls or ()
                    ]
                if not calls:
                    assert text == SCRIPT.answer
                    return
                messages.append(message)
                for call_id, result in run_calls(session, calls):
                    messages.append(
                        {"role": "tool", "tool_call_id": call_id, "content": json.dumps(result)}
                    )
        raise AssertionError("the model never answered")

    def rate_limited(self, session: Session) -> BaseException:
        client = self.client(session)
        try:
            with session.recorder.conversation(session.conversation_id):
                client.chat.completions.create(
                    model=MODEL_RATE_LIMITED, messages=[{"role": "user", "content": "hi"}]
                )
        except openai.RateLimitError as error:
            return error
        raise AssertionError("the 429 did not reach the caller")


class TestAsyncChatCompletions(IntegrationContract):
    """AsyncOpenAI, the conversation passed explicitly instead of by context."""

    provider = "openai"
    finish_reasons = ("tool_calls", "stop")

    def client(self, session: Session) -> AsyncOpenAI:
        bare = AsyncOpenAI(base_url=session.server.openai_url, api_key="test", max_retries=0)
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
                chunks = await client.chat.completions.create(
                    model=model, messages=messages, tools=CHAT_TOOLS, stream=True
                )
                text, calls, message = chat_answer([c async for c in chunks])
            else:
                answer = await client.chat.completions.create(
                    model=model, messages=messages, tools=CHAT_TOOLS
                )
                message = answer.choices[0].message
                text = message.content or ""
                calls = [
                    (c.id, c.function.name, c.function.arguments) for c in message.tool_calls or ()
                ]
            if not calls:
                assert text == SCRIPT.answer
                return
            messages.append(message)
            with session.recorder.conversation(session.conversation_id):
                for call_id, result in run_calls(session, calls):
                    messages.append(
                        {"role": "tool", "tool_call_id": call_id, "content": json.dumps(result)}
                    )
        raise AssertionError("the model never answered")

    def rate_limited(self, session: Session) -> BaseException:
        async def call() -> BaseException:
            try:
                await self.client(session).chat.completions.create(
                    model=MODEL_RATE_LIMITED, messages=[{"role": "user", "content": "hi"}]
                )
            except openai.RateLimitError as error:
                return error
            raise AssertionError("the 429 did not reach the caller")

        return asyncio.run(call())


class TestResponses(IntegrationContract):
    """The Responses API: function calls are output items; results go back as
    `function_call_output` items."""

    provider = "openai"
    finish_reasons = ("tool_call", "stop")

    def client(self, session: Session) -> OpenAI:
        bare = OpenAI(base_url=session.server.openai_url, api_key="test", max_retries=0)
        return record(bare, session.recorder, agent=session.agent)

    def converse(self, session: Session, model: str, *, stream: bool = False) -> None:
        client = self.client(session)
        items: list[Any] = [{"role": "user", "content": SCRIPT.question}]
        with session.recorder.conversation(session.conversation_id):
            for _ in range(3):
                if stream:
                    answer = None
                    for event in client.responses.create(
                        model=model, input=items, tools=RESPONSES_TOOLS, stream=True
                    ):
                        if event.type == "response.completed":
                            answer = event.response
                    assert answer is not None
                else:
                    answer = client.responses.create(
                        model=model, input=items, tools=RESPONSES_TOOLS
                    )
                calls = [i for i in answer.output if i.type == "function_call"]
                if not calls:
                    assert answer.output_text == SCRIPT.answer
                    return
                items.extend(c.model_dump(exclude_none=True) for c in calls)
                found = [(c.call_id, c.name, c.arguments) for c in calls]
                for call_id, result in run_calls(session, found):
                    items.append(
                        {
                            "type": "function_call_output",
                            "call_id": call_id,
                            "output": json.dumps(result),
                        }
                    )
        raise AssertionError("the model never answered")

    def rate_limited(self, session: Session) -> BaseException:
        try:
            with session.recorder.conversation(session.conversation_id):
                self.client(session).responses.create(model=MODEL_RATE_LIMITED, input="hi")
        except openai.RateLimitError as error:
            return error
        raise AssertionError("the 429 did not reach the caller")
