"""The OpenAI Agents SDK trace processor (`agentlog.integrations.openai_agents.Processor`)
passes the integration contract with a real `agents.Runner` run on the Responses API
(AsyncOpenAI pointed at the canned model server); the conversation is the trace's
group_id."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import agents
import openai
import pytest
from agents import Agent, FunctionTool, RunConfig, Runner
from agents.models.openai_responses import OpenAIResponsesModel
from openai import AsyncOpenAI

from agentlog.integrations.openai_agents import Processor
from agentlog.testing import IntegrationContract, Session
from agentlog.testing.integration_contract import run_tool
from agentlog.testing.model_server import MODEL_RATE_LIMITED, SCRIPT


def scripted_tool(spec: dict[str, Any]) -> FunctionTool:
    """A function tool offering the model exactly the script's JSON schema (what the hand
    recording declares), as an application with its own schemas does."""

    async def invoke(context: Any, arguments: str) -> str:
        return json.dumps(run_tool(spec["name"], json.loads(arguments)))

    return FunctionTool(
        name=spec["name"],
        description=spec["description"],
        params_json_schema=spec["parameters"],
        on_invoke_tool=invoke,
        strict_json_schema=False,
    )


TOOLS = [scripted_tool(spec) for spec in SCRIPT.tools()]


class TestAgentsSdk(IntegrationContract):
    provider = "openai"
    finish_reasons = ("tool_call", "stop")

    @pytest.fixture(autouse=True)
    def processor(self, recorder: Any) -> Iterator[None]:
        """This recorder's processor alone (not the SDK's exporter to OpenAI's servers)."""
        agents.set_trace_processors([Processor(recorder)])
        yield
        agents.set_trace_processors([])

    def run(self, session: Session, model: str, stream: bool = False) -> Any:
        client = AsyncOpenAI(base_url=session.server.openai_url, api_key="test", max_retries=0)
        agent = Agent(
            name=session.agent,
            model=OpenAIResponsesModel(model=model, openai_client=client),
            tools=TOOLS,
        )
        config = RunConfig(group_id=session.conversation_id, tracing_disabled=False)
        if stream:

            async def streamed() -> Any:
                result = Runner.run_streamed(agent, SCRIPT.question, run_config=config)
                async for _ in result.stream_events():
                    pass
                return result

            return asyncio.run(streamed())
        return Runner.run_sync(agent, SCRIPT.question, run_config=config)

    def converse(self, session: Session, model: str, *, stream: bool = False) -> None:
        result = self.run(session, model, stream)
        assert result.final_output == SCRIPT.answer

    def rate_limited(self, session: Session) -> BaseException:
        try:
            self.run(session, MODEL_RATE_LIMITED)
        except openai.RateLimitError as error:
            return error
        raise AssertionError("the 429 did not reach the caller")

    def test_a_streamed_answer_records_its_time_to_first_token(self, *args: Any) -> None:
        pytest.skip(
            "the Agents SDK's response spans carry no time to first token (nor whether the "
            "run streamed): record its client with agentlog.integrations.openai for that"
        )


def test_a_tripped_guardrail_is_an_escalation_naming_it(settings: Any) -> None:
    """An input guardrail that trips stops the run (the SDK's own exception reaches the
    caller); the recording says which guardrail it was."""
    from agents import (
        GuardrailFunctionOutput,
        InputGuardrailTripwireTriggered,
        input_guardrail,
    )

    from agentlog.producers import Recorder
    from agentlog.testing.integration_contract import read_independently
    from agentlog.testing.model_server import MODEL_PLAIN, ModelServer

    @input_guardrail
    def no_refunds(context: Any, agent: Any, text: Any) -> GuardrailFunctionOutput:
        return GuardrailFunctionOutput(output_info="refund asked", tripwire_triggered=True)

    with Recorder(settings) as recorder, ModelServer() as server:
        agents.set_trace_processors([Processor(recorder)])
        try:
            client = AsyncOpenAI(base_url=server.openai_url, api_key="test", max_retries=0)
            agent = Agent(
                name="billing",
                model=OpenAIResponsesModel(model=MODEL_PLAIN, openai_client=client),
                input_guardrails=[no_refunds],
            )
            config = RunConfig(group_id="conv-guarded", tracing_disabled=False)
            with pytest.raises(InputGuardrailTripwireTriggered):
                Runner.run_sync(agent, "refund me", run_config=config)
        finally:
            agents.set_trace_processors([])
        recorder.flush(30)
    events = [
        e for _, e in read_independently(settings, 1) if e["conversation_id"] == "conv-guarded"
    ]
    escalations = [p for name, p in (e["payload"] for e in events) if name == "agentlog.Escalation"]
    assert escalations == [
        {
            "agent": "billing",
            "reason": "guardrail no_refunds tripped",
            "target": "guardrail:no_refunds",
        }
    ]
