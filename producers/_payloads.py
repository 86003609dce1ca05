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

from agentlog.errors import SchemaError
from agentlog.events import Payload
from agentlog.llm_calls import answer_text, message_finish_reasons
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


def _json_list(value: Any, name: str) -> str | None:
    """A list of OTel GenAI messages, parts or tool definitions as JSON text."""
    if value is None:
        return None
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
        raise SchemaError(f"{name} must be a list, got {type(value).__name__}")
    return to_json(list(value))


def _json_object(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise SchemaError(f"{name} must be a mapping, got {type(value).__name__}")
    return to_json(dict(value))


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
        event_id: str | None = None,
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
        event_id: str | None = None,
    ) -> Result:
        """Record any payload model (`agentlog.events`); the named methods are shortcuts.

        Every recording method takes these envelope keywords; `event_id` fixes the event's
        id (a UUID) where a source may deliver the same event twice, so that the repeat
        dedups instead of counting twice."""
        return self._emit(
            conversation_id,
            payload_to_avro(payload),
            agent,
            causation_id,
            trace_id,
            span_id,
            occurred_at,
            event_id,
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
        latency_ms: float,
        input: Any = None,
        output_text: str | None = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        finish_reason: str | None = None,
        response_model: str | None = None,
        operation: str = "chat",
        input_messages: Sequence[Mapping[str, Any]] | None = None,
        system_instructions: Sequence[Mapping[str, Any]] | None = None,
        tool_definitions: Sequence[Mapping[str, Any]] | None = None,
        output_messages: Sequence[Mapping[str, Any]] | None = None,
        request_parameters: Mapping[str, Any] | None = None,
        response_id: str | None = None,
        finish_reasons: Sequence[str] | None = None,
        cache_read_input_tokens: int | None = None,
        cache_creation_input_tokens: int | None = None,
        reasoning_tokens: int | None = None,
        time_to_first_token_ms: float | None = None,
        streamed: bool = False,
        provider_response: Any = None,
        **envelope: Any,
    ) -> Result:
        """One model call, recorded whole (docs/llm-calls.md).

        The request: `input_messages`, `system_instructions` and `tool_definitions` in the
        OpenTelemetry GenAI shapes, `request_parameters` (temperature, tool_choice, ...).
        The response: `output_messages` (text, the model's tool calls, refusals,
        reasoning), `response_id`, `finish_reasons`, usage, and `provider_response` (the
        provider's body as JSON). `input` and `output_text` are the older, thinner form,
        still accepted; `output_text` defaults to the text parts of `output_messages`,
        `finish_reasons` to theirs and `finish_reason` to the first of those."""
        if output_text is None:
            output_text = answer_text(output_messages)
        if finish_reasons is None:
            finish_reasons = message_finish_reasons(output_messages)
            if not finish_reasons and finish_reason is not None:
                finish_reasons = [finish_reason]
        if finish_reason is None and finish_reasons:
            finish_reason = finish_reasons[0]
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
            "operation": operation,
            "input_messages_json": _json_list(input_messages, "input_messages"),
            "system_instructions_json": _json_list(system_instructions, "system_instructions"),
            "tool_definitions_json": _json_list(tool_definitions, "tool_definitions"),
            "output_messages_json": _json_list(output_messages, "output_messages"),
            "request_parameters_json": _json_object(request_parameters, "request_parameters"),
            "response_id": response_id,
            "finish_reasons": list(finish_reasons),
            "cache_read_input_tokens": cache_read_input_tokens,
            "cache_creation_input_tokens": cache_creation_input_tokens,
            "reasoning_tokens": reasoning_tokens,
            "time_to_first_token_ms": time_to_first_token_ms,
            "streamed": streamed,
            "provider_response_json": _optional_json(provider_response),
        }
        return self._emit(conversation_id, ("agentlog.LlmCall", body), agent, **envelope)

    def llm_call_failed(
        self,
        conversation_id: str,
        *,
        agent: str,
        provider: str,
        request_model: str,
        error_type: str,
        error_message: str,
        latency_ms: float,
        status_code: int | None = None,
        operation: str = "chat",
        input_messages: Sequence[Mapping[str, Any]] | None = None,
        system_instructions: Sequence[Mapping[str, Any]] | None = None,
        tool_definitions: Sequence[Mapping[str, Any]] | None = None,
        request_parameters: Mapping[str, Any] | None = None,
        **envelope: Any,
    ) -> Result:
        """A model call that got no answer (rate limit, timeout, bad request): what was
        asked, and the provider's error (`status_code`: its HTTP status, if any)."""
        body = {
            "agent": agent,
            "provider": provider,
            "request_model": request_model,
            "error_type": error_type,
            "error_message": error_message,
            "latency_ms": latency_ms,
            "status_code": status_code,
            "operation": operation,
            "input_messages_json": _json_list(input_messages, "input_messages"),
            "system_instructions_json": _json_list(system_instructions, "system_instructions"),
            "tool_definitions_json": _json_list(tool_definitions, "tool_definitions"),
            "request_parameters_json": _json_object(request_parameters, "request_parameters"),
        }
        return self._emit(conversation_id, ("agentlog.LlmCallFailed", body), agent, **envelope)

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
