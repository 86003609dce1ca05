"""The implementation behind `agentlog.integrations.openai_agents`: its face says how to use it."""

from __future__ import annotations

import re
import threading
from datetime import datetime
from typing import Any

from agentlog.integrations import _openai_shapes as shapes
from agentlog.integrations._recording import (
    event_id,
    json_value,
    plain,
    require,
    safely,
    sync_recorder,
)

require("agents", "openai-agents")

from agents.tracing import TracingProcessor  # noqa: E402

# openai's error classes by HTTP status (the span keeps only the error's text).
_ERRORS = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    409: "ConflictError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
}
_STATUS = re.compile(r"Error code: (\d{3})")


def _millis(span: Any) -> float:
    try:
        started = datetime.fromisoformat(span.started_at)
        ended = datetime.fromisoformat(span.ended_at)
    except (TypeError, ValueError):
        return 0.0
    return (ended - started).total_seconds() * 1000


class Processor(TracingProcessor):
    """A TracingProcessor recording to a `Recorder`."""

    def __init__(self, recorder: Any) -> None:
        self.recorder = sync_recorder(recorder, "agentlog.integrations.openai_agents.Processor")
        self._lock = threading.Lock()
        self._conversations: dict[str, str] = {}  # trace id -> conversation
        self._parents: dict[str, str | None] = {}  # span id -> parent span id
        self._agents: dict[str, str] = {}  # agent span id -> agent name
        # trace id -> the model's tool calls not yet run: [call id, name, arguments]
        self._calls: dict[str, list[tuple[str, str, Any]]] = {}
        self._tool_ids: dict[str, str] = {}  # function span id -> tool call id

    # --- where ----------------------------------------------------------------

    def _conversation(self, trace_id: str) -> str:
        return self._conversations.get(trace_id, trace_id)

    def _agent(self, span: Any) -> str:
        current: str | None = span.parent_id
        for _ in range(64):  # spans nest a few levels; a cycle cannot hold us
            if current is None:
                break
            if current in self._agents:
                return self._agents[current]
            current = self._parents.get(current)
        return "agent"

    # --- the processor interface ----------------------------------------------

    def on_trace_start(self, trace: Any) -> None:
        exported = trace.export() or {}
        group = exported.get("group_id")
        with self._lock:
            self._conversations[trace.trace_id] = str(group) if group else trace.trace_id

    def on_trace_end(self, trace: Any) -> None:
        with self._lock:
            self._conversations.pop(trace.trace_id, None)
            self._calls.pop(trace.trace_id, None)

    def on_span_start(self, span: Any) -> None:
        data = span.span_data
        kind = getattr(data, "type", "")
        with self._lock:
            self._parents[span.span_id] = span.parent_id
            if kind == "agent":
                self._agents[span.span_id] = data.name

    def on_span_end(self, span: Any) -> None:
        kind = getattr(span.span_data, "type", "")
        handler = {
            "response": self._response,
            "generation": self._generation,
            "function": self._tool_ended,
            "handoff": self._handoff,
            "guardrail": self._guardrail,
            "mcp_tools": self._mcp_tools,
        }.get(kind)
        if handler is not None:
            safely(lambda: handler(span))
        with self._lock:
            self._parents.pop(span.span_id, None)
            self._agents.pop(span.span_id, None)

    def shutdown(self) -> None:
        self.recorder.flush()

    def force_flush(self) -> None:
        self.recorder.flush()

    # --- spans ------------------------------------------------------------------

    def _envelope(self, span: Any, what: str) -> dict[str, Any]:
        return {"event_id": event_id(span.trace_id, span.span_id, what)}

    def _llm(self, span: Any, request: dict[str, Any], answer: dict[str, Any] | None) -> None:
        cid = self._conversation(span.trace_id)
        agent = self._agent(span)
        fields = {k: v for k, v in request.items() if v is not None}
        if answer is None or span.error:
            error = span.error or {}
            text = str((error.get("data") or {}).get("error") or error.get("message") or "")
            found = _STATUS.search(text)
            status = int(found.group(1)) if found else None
            fallback = "InternalServerError" if (status or 0) >= 500 else "APIError"
            self.recorder.llm_call_failed(
                cid,
                agent=agent,
                provider="openai",
                error_type=_ERRORS.get(status or 0, fallback),
                error_message=text,
                status_code=status,
                latency_ms=_millis(span),
                **{k: v for k, v in fields.items() if k != "request_parameters" or v},
                **self._envelope(span, "llm_call_failed"),
            )
            return
        fields.update((k, v) for k, v in answer.items() if v is not None)
        calls = []
        for message in answer.get("output_messages") or ():
            for part in message.get("parts", ()):
                if part.get("type") == "tool_call":
                    calls.append((part["id"], part["name"], part.get("arguments")))
        with self._lock:
            self._calls[span.trace_id] = calls
        self.recorder.llm_call(
            cid,
            agent=agent,
            provider="openai",
            latency_ms=_millis(span),
            **fields,
            **self._envelope(span, "llm_call"),
        )

    def _response(self, span: Any) -> None:
        data = span.span_data
        response = plain(data.response) if data.response is not None else None
        request = {
            "request_model": str((response or {}).get("model") or ""),
            "input_messages": shapes.responses_input(data.input),
            "system_instructions": None,
            "tool_definitions": shapes.tool_definitions((response or {}).get("tools")),
        }
        if response is not None and response.get("instructions"):
            request["system_instructions"] = [
                {"type": "text", "content": str(response["instructions"])}
            ]
        self._llm(span, request, shapes.responses_response(response) if response else None)

    def _generation(self, span: Any) -> None:
        data = span.span_data
        request = {
            "request_model": str(data.model or ""),
            "input_messages": [shapes.chat_message(m) for m in data.input or ()],
            "tool_definitions": shapes.tool_definitions(getattr(data, "tools", None)),
            "request_parameters": plain(data.model_config) or None,
        }
        answer = None
        if data.output is not None and not span.error:
            usage = plain(data.usage) or {}
            choices = [
                {"message": m, "finish_reason": "tool_calls" if m.get("tool_calls") else "stop"}
                for m in plain(data.output)
            ]
            answer = shapes.chat_response(
                {
                    "model": data.model,
                    "choices": choices,
                    "usage": {
                        "prompt_tokens": usage.get("input_tokens", 0),
                        "completion_tokens": usage.get("output_tokens", 0),
                    },
                }
            )
            answer["provider_response"] = None
        self._llm(span, request, answer)

    def _tool_requested(self, span: Any) -> None:
        data = span.span_data
        arguments = json_value(data.input) if data.input is not None else {}
        with self._lock:
            pending = self._calls.get(span.trace_id, [])
            match = next(
                (c for c in pending if c[1] == data.name and c[2] == arguments),
                next((c for c in pending if c[1] == data.name), None),
            )
            if match is not None:
                pending.remove(match)
            call_id = match[0] if match else f"call_{span.span_id}"
            self._tool_ids[span.span_id] = call_id
        safely(
            lambda: self.recorder.tool_call_requested(
                self._conversation(span.trace_id),
                call_id,
                data.name,
                arguments,
                agent=self._agent(span),
                **self._envelope(span, "tool_call_requested"),
            )
        )

    def _tool_ended(self, span: Any) -> None:
        # A function span's arguments are set when it ends: the request is recorded then,
        # just before its outcome.
        self._tool_requested(span)
        data = span.span_data
        with self._lock:
            call_id = self._tool_ids.pop(span.span_id, f"call_{span.span_id}")
        cid = self._conversation(span.trace_id)
        if span.error:
            error = span.error
            self.recorder.tool_call_failed(
                cid,
                call_id,
                data.name,
                error_type=str(error.get("message") or "Error"),
                error_message=str((error.get("data") or {}).get("error") or error.get("data")),
                duration_ms=_millis(span),
                agent=self._agent(span),
                **self._envelope(span, "tool_call_failed"),
            )
            return
        self.recorder.tool_call_completed(
            cid,
            call_id,
            data.name,
            json_value(data.output),
            duration_ms=_millis(span),
            agent=self._agent(span),
            **self._envelope(span, "tool_call_completed"),
        )

    def _handoff(self, span: Any) -> None:
        data = span.span_data
        if data.from_agent and data.to_agent:
            self.recorder.handoff(
                self._conversation(span.trace_id),
                data.from_agent,
                data.to_agent,
                **self._envelope(span, "handoff"),
            )

    def _guardrail(self, span: Any) -> None:
        data = span.span_data
        if data.triggered:
            self.recorder.escalation(
                self._conversation(span.trace_id),
                self._agent(span),
                f"guardrail {data.name} tripped",
                target=f"guardrail:{data.name}",
                **self._envelope(span, "guardrail"),
            )

    def _mcp_tools(self, span: Any) -> None:
        data = span.span_data
        tools = [
            {"name": name, "description": f"MCP tool of {data.server}"}
            for name in data.result or ()
        ]
        if tools:
            self.recorder.tools_declared(
                self._conversation(span.trace_id),
                self._agent(span),
                tools,
                **self._envelope(span, "mcp_tools"),
            )
