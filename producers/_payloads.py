"""The recording API in the user's words, shared by the sync and asyncio recorders.

Each method hands `_emit` one payload as `(Avro record name, field dict)`; the encoder
checks every field against the Avro schema (strict types; a wrong one raises
SchemaError naming it), which is the validation the hot path pays for. The pydantic
models in `agentlog.events` define the same records, and the tests decode what every
method writes through them, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

import orjson

from agentlog.events import Payload
from agentlog.serde import payload_to_avro

Result = TypeVar("Result")
PayloadRecord = tuple[str, dict[str, Any]]

_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS
_FALLBACK_JSON = json.JSONEncoder(default=str, separators=(",", ":"), ensure_ascii=False)


def to_json(value: Any) -> str:
    """Compact JSON text; values JSON cannot hold are stored as their str()."""
    try:
        return orjson.dumps(value, default=str, option=_JSON_OPTIONS).decode()
    except TypeError:
        # orjson refuses integers beyond 64 bits; the standard library does not.
        return _FALLBACK_JSON.encode(value)


def _optional_json(value: Any) -> str | None:
    return None if value is None else to_json(value)


class EventMethods(Generic[Result]):
    def _emit(
        self,
        conversation_id: str,
        payload: PayloadRecord,
        agent: str | None,
        causation_id: str | None = None,
        trace_id: str | None = None,
        span_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> Result:
        raise NotImplementedError

    def record(
        self,
        conversation_id: str,
        payload: Payload,
        *,
        agent: str | None = None,
        causation_id: str | None = None,
        trace_id: str | None = None,
        span_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> Result:
        """Record any payload model (`agentlog.events`); the named methods are shortcuts."""
        return self._emit(
            conversation_id,
            payload_to_avro(payload),
            agent,
            causation_id,
            trace_id,
            span_id,
            occurred_at,
        )

    def start_conversation(
        self,
        conversation_id: str,
        *,
        channel: str = "chat",
        user_id: str | None = None,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        **envelope: Any,
    ) -> Result:
        body = {
            "channel": channel,
            "user_id": user_id,
            "title": title,
            "metadata_json": _optional_json(metadata),
        }
        return self._emit(conversation_id, ("agentlog.ConversationStarted", body), None, **envelope)

    def end_conversation(
        self, conversation_id: str, outcome: str, *, reason: str | None = None, **envelope: Any
    ) -> Result:
        body = {"outcome": outcome, "reason": reason}
        return self._emit(conversation_id, ("agentlog.ConversationEnded", body), None, **envelope)

    def system_prompt(
        self,
        conversation_id: str,
        agent: str,
        content: str,
        *,
        prompt_version: str | None = None,
        **envelope: Any,
    ) -> Result:
        body = {"agent": agent, "content": content, "prompt_version": prompt_version}
        return self._emit(conversation_id, ("agentlog.SystemPrompt", body), agent, **envelope)

    def tools_declared(
        self,
        conversation_id: str,
        agent: str,
        tools: Sequence[Mapping[str, Any]],
        **envelope: Any,
    ) -> Result:
        """`tools`: dicts with name, description and a JSON-schema `parameters`."""
        declared = [
            {
                "name": t["name"],
                "description": t.get("description", ""),
                "parameters_json": to_json(t.get("parameters", {})),
            }
            for t in tools
        ]
        body = {"agent": agent, "tools": declared}
        return self._emit(conversation_id, ("agentlog.ToolsDeclared", body), agent, **envelope)

    def user_message(
        self, conversation_id: str, text: str, *, user_id: str | None = None, **envelope: Any
    ) -> Result:
        body = {"text": text, "user_id": user_id}
        return self._emit(conversation_id, ("agentlog.UserMessage", body), None, **envelope)

    def agent_message(self, conversation_id: str, agent: str, text: str, **envelope: Any) -> Result:
        body = {"agent": agent, "text": text}
        return self._emit(conversation_id, ("agentlog.AgentMessage", body), agent, **envelope)

    def llm_call(
        self,
        conversation_id: str,
        *,
        agent: str,
        provider: str,
        request_model: str,
        input: Any,
        output_text: str,
        input_tokens: int,
        output_tokens: int,
        latency_ms: float,
        finish_reason: str | None = None,
        response_model: str | None = None,
        **envelope: Any,
    ) -> Result:
        """`input` is the messages sent to the model (stored as JSON text)."""
        body = {
            "agent": agent,
            "provider": provider,
            "request_model": request_model,
            "response_model": response_model,
            "input_json": input if isinstance(input, str) else to_json(input),
            "output_text": output_text,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "latency_ms": latency_ms,
            "finish_reason": finish_reason,
        }
        return self._emit(conversation_id, ("agentlog.LlmCall", body), agent, **envelope)

    def tool_call_requested(
        self,
        conversation_id: str,
        tool_call_id: str,
        tool_name: str,
        arguments: Any,
        *,
        agent: str | None = None,
        attempt: int = 1,
        **envelope: Any,
    ) -> Result:
        body = {
            "tool_call_id": tool_call_id,
            "tool_name": tool_name,
            "arguments_json": to_json(arguments),
            "agent": agent,
            "attempt": attempt,
        }
        return self._emit(conversation_id, ("agentlog.ToolCallRequested", body), agent, **envelope)

    def tool_call_completed(
        self,
        conversation_id: str,
        tool_call_id: str,
        tool_name: str,
        result: Any,
        *,
        duration_ms: float,
        attempt: int = 1,
        agent: str | None = None,
        **envelope: Any,
    ) -> Result:
        body = {
            "tool_call_id": tool_call_id,
            "tool_name": tool_name,
            "result_json": to_json(result),
            "duration_ms": duration_ms,
            "attempt": attempt,
        }
        return self._emit(conversation_id, ("agentlog.ToolCallCompleted", body), agent, **envelope)

    def tool_call_failed(
        self,
        conversation_id: str,
        tool_call_id: str,
        tool_name: str,
        *,
        error_type: str,
        error_message: str,
        duration_ms: float,
        attempt: int = 1,
        retryable: bool = False,
        agent: str | None = None,
        **envelope: Any,
    ) -> Result:
        body = {
            "tool_call_id": tool_call_id,
            "tool_name": tool_name,
            "error_type": error_type,
            "error_message": error_message,
            "duration_ms": duration_ms,
            "attempt": attempt,
            "retryable": retryable,
        }
        return self._emit(conversation_id, ("agentlog.ToolCallFailed", body), agent, **envelope)

    def intent_identified(
        self, conversation_id: str, agent: str, intent: str, confidence: float, **envelope: Any
    ) -> Result:
        body = {"agent": agent, "intent": intent, "confidence": confidence}
        return self._emit(conversation_id, ("agentlog.IntentIdentified", body), agent, **envelope)

    def handoff(
        self,
        conversation_id: str,
        from_agent: str,
        to_agent: str,
        *,
        reason: str | None = None,
        **envelope: Any,
    ) -> Result:
        body = {"from_agent": from_agent, "to_agent": to_agent, "reason": reason}
        return self._emit(conversation_id, ("agentlog.Handoff", body), from_agent, **envelope)

    def escalation(
        self,
        conversation_id: str,
        agent: str,
        reason: str,
        *,
        target: str = "human",
        **envelope: Any,
    ) -> Result:
        body = {"agent": agent, "reason": reason, "target": target}
        return self._emit(conversation_id, ("agentlog.Escalation", body), agent, **envelope)

    def saga_started(
        self,
        conversation_id: str,
        saga_id: str,
        saga: str,
        steps: Sequence[str],
        *,
        input: Any = None,
        **envelope: Any,
    ) -> Result:
        body = {
            "saga_id": saga_id,
            "saga": saga,
            "steps": list(steps),
            "input_json": _optional_json(input),
        }
        return self._emit(conversation_id, ("agentlog.SagaStarted", body), None, **envelope)

    def saga_step_started(
        self,
        conversation_id: str,
        saga_id: str,
        step: str,
        *,
        input: Any = None,
        attempt: int = 1,
        timeout_ms: float | None = None,
        **envelope: Any,
    ) -> Result:
        body = {
            "saga_id": saga_id,
            "step": step,
            "input_json": _optional_json(input),
            "attempt": attempt,
            "timeout_ms": timeout_ms,
        }
        return self._emit(conversation_id, ("agentlog.SagaStepStarted", body), None, **envelope)

    def saga_step_completed(
        self,
        conversation_id: str,
        saga_id: str,
        step: str,
        *,
        output: Any = None,
        **envelope: Any,
    ) -> Result:
        body = {"saga_id": saga_id, "step": step, "output_json": _optional_json(output)}
        return self._emit(conversation_id, ("agentlog.SagaStepCompleted", body), None, **envelope)

    def saga_step_compensated(
        self, conversation_id: str, saga_id: str, step: str, reason: str, **envelope: Any
    ) -> Result:
        body = {"saga_id": saga_id, "step": step, "reason": reason}
        return self._emit(conversation_id, ("agentlog.SagaStepCompensated", body), None, **envelope)

    def saga_step_failed(
        self,
        conversation_id: str,
        saga_id: str,
        step: str,
        *,
        error_type: str,
        error_message: str,
        timed_out: bool = False,
        phase: str = "action",
        attempt: int = 1,
        **envelope: Any,
    ) -> Result:
        """`phase`: `action` (the saga compensates) or `compensation` (one failed attempt
        at undoing the step)."""
        body = {
            "saga_id": saga_id,
            "step": step,
            "error_type": error_type,
            "error_message": error_message,
            "timed_out": timed_out,
            "phase": phase,
            "attempt": attempt,
        }
        return self._emit(conversation_id, ("agentlog.SagaStepFailed", body), None, **envelope)

    def saga_ended(
        self,
        conversation_id: str,
        saga_id: str,
        outcome: str,
        *,
        reason: str | None = None,
        **envelope: Any,
    ) -> Result:
        """`outcome`: completed, compensated or compensation_failed."""
        body = {"saga_id": saga_id, "outcome": outcome, "reason": reason}
        return self._emit(conversation_id, ("agentlog.SagaEnded", body), None, **envelope)
