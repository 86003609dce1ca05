"""What agent code runs with: `AgentSession`, one conversation's calls and records.

Agent code written against this protocol runs unchanged live (a session that records
through a recorder and calls real models and tools), in the demo's simulated world,
and on a recording (`agentlog.replay.rerun`, which answers the calls from the log).
So that a re-run makes the same decisions, agent code decides only on what the session
returns: the customer's messages, the models' answers and the tools' results.

Retries belong to whoever executes a tool call, not to the agent: `call_tool` returns
the result of the call's last attempt, or raises `ToolError` (agentlog.errors) when it
failed for good. Every other method records an event of the session's conversation, as
the recorder method of the same name does with the conversation id filled in; a session
class inherits them from `SessionRecording` and says how it records in `_record`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class LlmAnswer:
    """A model's answer, and what its LLM call records beside the request."""

    text: str
    finish_reason: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: float = 0.0
    provider: str = "unknown"
    response_model: str | None = None

    @classmethod
    def of(cls, answer: Any, measured_ms: float) -> LlmAnswer:
        """What a live model function returned: its text alone (timed by the caller,
        `measured_ms`), an `LlmAnswer`, or any object with a `text` and some of these
        fields."""
        if isinstance(answer, LlmAnswer):
            return answer
        if isinstance(answer, str):
            return cls(answer, latency_ms=measured_ms)
        return cls(
            str(answer.text),
            getattr(answer, "finish_reason", None),
            int(getattr(answer, "input_tokens", 0)),
            int(getattr(answer, "output_tokens", 0)),
            float(getattr(answer, "latency_ms", measured_ms)),
            getattr(answer, "provider", None) or "unknown",
            getattr(answer, "response_model", None),
        )

    def llm_call_fields(
        self, messages: Any, *, model: str, agent: str, provider: str | None = None
    ) -> dict[str, Any]:
        """The keyword arguments of `Recorder.llm_call` for this answer to `messages`."""
        return {
            "agent": agent,
            "provider": provider or self.provider,
            "request_model": model,
            "response_model": self.response_model,
            "input": messages,
            "output_text": self.text,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "latency_ms": self.latency_ms,
            "finish_reason": self.finish_reason,
        }


class AgentSession(Protocol):
    @property
    def conversation_id(self) -> str: ...

    @property
    def user_messages(self) -> list[str]:
        """The customer's messages this run answers, in order."""
        ...

    def llm(self, messages: Any, *, model: str, agent: str, provider: str | None = None) -> str:
        """The model's answer to `messages` (recorded as an LLM call)."""
        ...

    def call_tool(self, tool_name: str, arguments: Mapping[str, Any], *, agent: str) -> Any:
        """The tool's result (recorded as the call's attempts); raises ToolError when
        the call failed for good."""
        ...

    # What the agent says and decides, recorded as it happens.

    def system_prompt(
        self, agent: str, content: str, *, prompt_version: str | None = None
    ) -> object: ...

    def tools_declared(self, agent: str, tools: Sequence[Mapping[str, Any]]) -> object: ...

    def user_message(self, text: str, *, user_id: str | None = None) -> object: ...

    def agent_message(self, agent: str, text: str) -> object: ...

    def intent_identified(self, agent: str, intent: str, confidence: float) -> object: ...

    def handoff(self, from_agent: str, to_agent: str, *, reason: str | None = None) -> object: ...

    def escalation(self, agent: str, reason: str, *, target: str = "human") -> object: ...

    def saga_started(
        self, saga_id: str, saga: str, steps: Sequence[str], *, input: Any = None
    ) -> object: ...

    def saga_step_started(self, saga_id: str, step: str, *, input: Any = None) -> object: ...

    def saga_step_completed(self, saga_id: str, step: str, *, output: Any = None) -> object: ...

    def saga_step_failed(
        self, saga_id: str, step: str, *, error_type: str, error_message: str
    ) -> object: ...

    def saga_step_compensated(self, saga_id: str, step: str, reason: str) -> object: ...

    def saga_ended(self, saga_id: str, outcome: str, *, reason: str | None = None) -> object: ...

    def end_conversation(self, outcome: str, *, reason: str | None = None) -> object: ...


class SessionRecording:
    """The recording half of `AgentSession` for a session class to inherit: each
    method hands `_record` its recorder method's name and arguments (without the
    conversation id), so a session says once how it records."""

    def _record(self, method: str, *args: Any, **kwargs: Any) -> object:
        raise NotImplementedError

    def system_prompt(
        self, agent: str, content: str, *, prompt_version: str | None = None
    ) -> object:
        return self._record("system_prompt", agent, content, prompt_version=prompt_version)

    def tools_declared(self, agent: str, tools: Sequence[Mapping[str, Any]]) -> object:
        return self._record("tools_declared", agent, tools)

    def user_message(self, text: str, *, user_id: str | None = None) -> object:
        return self._record("user_message", text, user_id=user_id)

    def agent_message(self, agent: str, text: str) -> object:
        return self._record("agent_message", agent, text)

    def intent_identified(self, agent: str, intent: str, confidence: float) -> object:
        return self._record("intent_identified", agent, intent, confidence)

    def handoff(self, from_agent: str, to_agent: str, *, reason: str | None = None) -> object:
        return self._record("handoff", from_agent, to_agent, reason=reason)

    def escalation(self, agent: str, reason: str, *, target: str = "human") -> object:
        return self._record("escalation", agent, reason, target=target)

    def saga_started(
        self, saga_id: str, saga: str, steps: Sequence[str], *, input: Any = None
    ) -> object:
        return self._record("saga_started", saga_id, saga, steps, input=input)

    def saga_step_started(self, saga_id: str, step: str, *, input: Any = None) -> object:
        return self._record("saga_step_started", saga_id, step, input=input)

    def saga_step_completed(self, saga_id: str, step: str, *, output: Any = None) -> object:
        return self._record("saga_step_completed", saga_id, step, output=output)

    def saga_step_failed(
        self, saga_id: str, step: str, *, error_type: str, error_message: str
    ) -> object:
        return self._record(
            "saga_step_failed", saga_id, step, error_type=error_type, error_message=error_message
        )

    def saga_step_compensated(self, saga_id: str, step: str, reason: str) -> object:
        return self._record("saga_step_compensated", saga_id, step, reason)

    def saga_ended(self, saga_id: str, outcome: str, *, reason: str | None = None) -> object:
        return self._record("saga_ended", saga_id, outcome, reason=reason)

    def end_conversation(self, outcome: str, *, reason: str | None = None) -> object:
        return self._record("end_conversation", outcome, reason=reason)
