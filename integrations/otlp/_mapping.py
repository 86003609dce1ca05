"""GenAI spans (and the log records that carry their content) into agentlog events.

Precedence, first that applies (docs/otlp.md):

1. OpenTelemetry GenAI, current conventions: `gen_ai.input.messages`,
   `gen_ai.output.messages`, `gen_ai.system_instructions`, `gen_ai.tool.definitions` as
   span attributes, then the same on a `gen_ai.client.inference.operation.details`
   event or log record of the span.
2. OpenTelemetry GenAI, older forms: per-message events or log records
   (`gen_ai.system.message`, `gen_ai.user.message`, `gen_ai.assistant.message`,
   `gen_ai.tool.message`, `gen_ai.choice`), then flat `gen_ai.prompt.N.*` /
   `gen_ai.completion.N.*` attributes (OpenLLMetry's older output too).
3. OpenInference: `llm.input_messages.N.message.*`, `llm.output_messages.N.message.*`,
   `llm.tools.N.tool.json_schema`, then `input.value` / `output.value` (the request and
   response bodies).

Each field (input messages, output messages, tools...) takes the first source that has
it. A span is an LLM call when `gen_ai.operation.name` is a model operation, or
`openinference.span.kind` is LLM, or it carries prompt attributes of the forms above;
a tool call when the operation is `execute_tool`, the OpenInference kind TOOL or the
`traceloop.span.kind` tool. Others (agents, workflows, HTTP...) make no event.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agentlog.integrations._recording import event_id
from agentlog.integrations.otlp._decode import LogRecord, Span

MODEL_OPERATIONS = frozenset(
    {"chat", "text_completion", "generate_content", "completion", "responses"}
)
AGENT_OPERATIONS = frozenset({"invoke_agent", "create_agent", "invoke_workflow"})
_MAX_KEY = 256
_INDEXED = re.compile(
    r"^(gen_ai\.prompt|gen_ai\.completion|llm\.input_messages|llm\.output_messages|llm\.tools)\.(\d{1,4})\.(.+)$"
)
_MESSAGE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
DETAILS_EVENT = "gen_ai.client.inference.operation.details"


@dataclass(frozen=True, slots=True)
class Emit:
    """One recorder call: `method` on the recorder with `kwargs`."""

    method: str
    kwargs: dict[str, Any]


def kind(span: Span) -> str:
    """ "llm", "tool", "agent" or "other"."""
    a = span.attributes
    operation = a.get("gen_ai.operation.name")
    oi = a.get("openinference.span.kind")
    traceloop = a.get("traceloop.span.kind")
    if operation in MODEL_OPERATIONS or oi == "LLM":
        return "llm"
    if operation == "execute_tool" or oi == "TOOL" or traceloop == "tool":
        return "tool"
    if operation in AGENT_OPERATIONS or oi == "AGENT" or traceloop in ("agent", "workflow"):
        return "agent"
    if operation is None and any(
        k.startswith(("gen_ai.prompt.", "gen_ai.input.messages", "llm.input_messages.")) for k in a
    ):
        return "llm"
    return "other"


def own_key(span: Span) -> tuple[str | None, str | None]:
    """(gen_ai.conversation.id, session.id) of the span, each when it is usable."""
    return _key(span.attributes.get("gen_ai.conversation.id")), _key(
        span.attributes.get("session.id")
    )


def _key(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    key = str(value).strip()
    if not key or len(key) > _MAX_KEY or not key.isprintable():
        return None
    return key


def agent_name(span: Span) -> str | None:
    for name in ("gen_ai.agent.name", "agent.name", "traceloop.entity.name"):
        value = span.attributes.get(name)
        if (
            isinstance(value, str)
            and value.strip()
            and span.attributes.get("traceloop.span.kind", "agent") in ("agent", "workflow")
        ):
            return value.strip()[:_MAX_KEY]
    return None


def _when(ns: int) -> datetime | None:
    if ns <= 0:
        return None
    try:
        return datetime.fromtimestamp(ns / 1e9, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            return value
    return value


def _list_of_dicts(value: Any) -> list[dict[str, Any]] | None:
    value = _json(value)
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return value
    return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _first(attributes: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        value = attributes.get(name)
        if value is not None and value != "":
            return value
    return None


# --- provider-shaped messages (OpenAI chat) into the OTel GenAI shape -------------------


def _arguments(value: Any) -> Any:
    return _json(value) if isinstance(value, str) else value


def chat_message(message: Mapping[str, Any]) -> dict[str, Any] | None:
    """An OpenAI chat message (or a flat prompt entry) as an OTel GenAI message."""
    role = message.get("role")
    if not isinstance(role, str):
        return None
    parts: list[dict[str, Any]] = []
    content = message.get("content")
    if role == "tool":
        call_id = message.get("tool_call_id") or message.get("id")
        parts.append({"type": "tool_call_response", "id": str(call_id or ""), "response": content})
    elif isinstance(content, str) and content:
        parts.append({"type": "text", "content": content})
    elif isinstance(content, list):
        for piece in content:
            if isinstance(piece, dict) and isinstance(piece.get("text"), str):
                parts.append({"type": "text", "content": piece["text"]})
    for call in message.get("tool_calls") or ():
        if not isinstance(call, dict):
            continue
        function: dict[str, Any] = (
            call["function"] if isinstance(call.get("function"), dict) else call
        )
        parts.append(
            {
                "type": "tool_call",
                "id": str(call.get("id") or ""),
                "name": str(function.get("name") or ""),
                "arguments": _arguments(function.get("arguments")),
            }
        )
    out: dict[str, Any] = {"role": role, "parts": parts}
    if isinstance(message.get("finish_reason"), str):
        out["finish_reason"] = message["finish_reason"]
    return out


def _unflatten(attributes: Mapping[str, Any], prefix: str) -> list[dict[str, Any]]:
    """`prefix.N.rest` attributes as a list of nested dicts (index order)."""
    found: dict[int, dict[str, Any]] = {}
    for key, value in attributes.items():
        match = _INDEXED.match(key)
        if match is None or match.group(1) != prefix:
            continue
        node = found.setdefault(int(match.group(2)), {})
        path = match.group(3).split(".")
        for step in path[:-1]:
            child = node.get(step)
            if not isinstance(child, dict):
                child = node[step] = {}
            node = child
        node[path[-1]] = value
    return [found[i] for i in sorted(found)]


def _listify(node: Any) -> list[Any]:
    """{"0": {...}, "1": {...}} (flattened lists) as a list."""
    if isinstance(node, dict) and all(k.isdigit() for k in node):
        return [node[k] for k in sorted(node, key=int)]
    return node if isinstance(node, list) else []


def _flat_messages(attributes: Mapping[str, Any], prefix: str) -> list[dict[str, Any]] | None:
    messages = []
    for entry in _unflatten(attributes, prefix):
        if prefix.startswith("llm."):
            entry = entry.get("message", {})
            if not isinstance(entry, dict):
                continue
            calls = [
                {
                    "id": c.get("tool_call", {}).get("id"),
                    "function": c.get("tool_call", {}).get("function", {}),
                }
                for c in _listify(entry.get("tool_calls"))
                if isinstance(c, dict)
            ]
            entry = {**entry, "tool_calls": calls}
        else:
            entry = {**entry, "tool_calls": _listify(entry.get("tool_calls"))}
        message = chat_message(entry)
        if message is not None:
            messages.append(message)
    return messages or None


def _event_messages(events: list[tuple[str, dict[str, Any], Any]]) -> tuple[Any, Any]:
    """Input and output messages of the older per-message events / log records."""
    inputs, outputs = [], []
    for name, attributes, body in events:
        fields = dict(attributes)
        if isinstance(body, dict):
            fields.update(body)
        if name in _MESSAGE_EVENTS:
            fields.setdefault("role", _MESSAGE_EVENTS[name])
            message = chat_message(fields)
            if message is not None:
                inputs.append(message)
        elif name == "gen_ai.choice":
            raw = fields.get("message")
            raw = dict(raw) if isinstance(raw, dict) else {}
            raw.setdefault("role", "assistant")
            message = chat_message(raw)
            if message is not None:
                if isinstance(fields.get("finish_reason"), str):
                    message["finish_reason"] = fields["finish_reason"]
                outputs.append(message)
    return inputs or None, outputs or None


def _openai_tool(tool: Any) -> dict[str, Any] | None:
    tool = _json(tool)
    if not isinstance(tool, dict):
        return None
    function: dict[str, Any] = tool["function"] if isinstance(tool.get("function"), dict) else tool
    name = function.get("name")
    if not isinstance(name, str):
        return None
    out = {"type": "function", "name": name}
    for field in ("description", "parameters"):
        if field in function:
            out[field] = function[field]
    return out


def _tools_of(tools: Any) -> list[dict[str, Any]] | None:
    found = [t for t in (_openai_tool(x) for x in tools or ()) if t is not None]
    return found or None


# --- the events of one span ------------------------------------------------------------


def _details(
    span: Span, logs: list[LogRecord]
) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any], Any]]]:
    """The operation-details attributes, and the per-message events, of a span and of
    the log records that point at it."""
    details: dict[str, Any] = {}
    events: list[tuple[str, dict[str, Any], Any]] = []
    for name, _, attributes in span.events:
        if name == DETAILS_EVENT:
            details.update(attributes)
        else:
            events.append((name, attributes, None))
    for record in logs:
        name = record.event_name or str(record.attributes.get("event.name", ""))
        if name == DETAILS_EVENT:
            details.update(record.attributes)
            if isinstance(record.body, dict):
                details.update(record.body)
        else:
            events.append((name, record.attributes, record.body))
    return details, events


def llm_call(span: Span, logs: list[LogRecord], conversation: str, agent: str) -> Emit:
    a = span.attributes
    details, events = _details(span, logs)
    request = _json(a.get("input.value"))
    request = request if isinstance(request, dict) else {}
    response = _json(a.get("output.value"))
    response = response if isinstance(response, dict) else {}
    event_inputs, event_outputs = _event_messages(events) if events else (None, None)
    if not any(k.startswith(("gen_ai.prompt.", "gen_ai.completion.", "llm.")) for k in a):
        a_flat: Mapping[str, Any] = {}
    else:
        a_flat = a

    inputs = (
        _list_of_dicts(a.get("gen_ai.input.messages"))
        or _list_of_dicts(details.get("gen_ai.input.messages"))
        or event_inputs
        or _flat_messages(a_flat, "gen_ai.prompt")
        or _flat_messages(a_flat, "llm.input_messages")
        or [
            m
            for m in (chat_message(x) for x in request.get("messages") or () if isinstance(x, dict))
            if m
        ]
        or None
    )
    choices = [
        {**c["message"], "finish_reason": c.get("finish_reason")}
        for c in response.get("choices") or ()
        if isinstance(c, dict) and isinstance(c.get("message"), dict)
    ]
    outputs = (
        _list_of_dicts(a.get("gen_ai.output.messages"))
        or _list_of_dicts(details.get("gen_ai.output.messages"))
        or event_outputs
        or _flat_messages(a_flat, "gen_ai.completion")
        or _flat_messages(a_flat, "llm.output_messages")
        or [m for m in (chat_message(x) for x in choices) if m]
        or None
    )
    if outputs:
        finish = _first(a, "gen_ai.response.finish_reasons", "llm.finish_reason")
        finish = [finish] if isinstance(finish, str) else finish
        for i, message in enumerate(outputs):
            if "finish_reason" not in message or message["finish_reason"] is None:
                message["finish_reason"] = (
                    finish[i] if isinstance(finish, list) and i < len(finish) else "stop"
                )
    system = _list_of_dicts(a.get("gen_ai.system_instructions")) or _list_of_dicts(
        details.get("gen_ai.system_instructions")
    )
    tools = (
        _list_of_dicts(a.get("gen_ai.tool.definitions"))
        or _list_of_dicts(details.get("gen_ai.tool.definitions"))
        or _tools_of(
            m.get("tool", {}).get("json_schema")
            for m in _unflatten(a_flat, "llm.tools")
            if isinstance(m.get("tool"), dict)
        )
        or _tools_of(request.get("tools"))
    )
    usage: dict[str, Any] = response["usage"] if isinstance(response.get("usage"), dict) else {}
    model = _first(a, "gen_ai.request.model", "llm.model_name", "llm.request.model")
    model = model if isinstance(model, str) else request.get("model")
    provider = _first(a, "gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
    parameters = {
        k.removeprefix("gen_ai.request."): v
        for k, v in a.items()
        if k.startswith("gen_ai.request.") and k != "gen_ai.request.model"
    }
    invocation = _json(a.get("llm.invocation_parameters"))
    if not parameters and isinstance(invocation, dict):
        parameters = {
            k: v for k, v in invocation.items() if k not in ("model", "messages", "tools")
        }
    common: dict[str, Any] = {
        "conversation_id": conversation,
        "agent": agent,
        "provider": str(provider or "unknown"),
        "request_model": str(model or "unknown"),
        "latency_ms": max(0.0, (span.end_ns - span.start_ns) / 1e6),
        "operation": str(a.get("gen_ai.operation.name") or "chat"),
        "input_messages": inputs,
        "system_instructions": system,
        "tool_definitions": tools,
        "request_parameters": parameters or None,
        "event_id": event_id("otlp", span.trace_id, span.span_id, "llm_call"),
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "occurred_at": _when(span.end_ns),
    }
    if span.status_code == 2:
        status = _int(_first(a, "http.response.status_code", "http.status_code"))
        return Emit(
            "llm_call_failed",
            {
                **common,
                "error_type": str(a.get("error.type") or "error"),
                "error_message": span.status_message or str(a.get("error.type") or "error"),
                "status_code": status,
            },
        )
    finish_reasons = a.get("gen_ai.response.finish_reasons")
    return Emit(
        "llm_call",
        {
            **common,
            "output_messages": outputs,
            "input_tokens": _int(
                _first(
                    a,
                    "gen_ai.usage.input_tokens",
                    "gen_ai.usage.prompt_tokens",
                    "llm.token_count.prompt",
                )
            )
            or _int(usage.get("prompt_tokens"))
            or 0,
            "output_tokens": _int(
                _first(
                    a,
                    "gen_ai.usage.output_tokens",
                    "gen_ai.usage.completion_tokens",
                    "llm.token_count.completion",
                )
            )
            or _int(usage.get("completion_tokens"))
            or 0,
            "response_model": _first(a, "gen_ai.response.model") or response.get("model"),
            "response_id": _first(a, "gen_ai.response.id") or response.get("id"),
            "finish_reasons": [str(f) for f in finish_reasons]
            if isinstance(finish_reasons, list)
            else None,
            "cache_read_input_tokens": _int(
                _first(
                    a,
                    "gen_ai.usage.cache_read.input_tokens",
                    "llm.token_count.prompt_details.cache_read",
                )
            ),
            "reasoning_tokens": _int(
                _first(
                    a,
                    "gen_ai.usage.reasoning_tokens",
                    "llm.token_count.completion_details.reasoning",
                )
            ),
            "streamed": bool(a.get("gen_ai.is_streaming") or a.get("llm.is_streaming")),
        },
    )


def tool_call(span: Span, conversation: str, agent: str) -> Iterator[Emit]:
    a = span.attributes
    name = _first(a, "gen_ai.tool.name", "tool.name", "traceloop.entity.name") or span.name
    call_id = _first(a, "gen_ai.tool.call.id", "tool_call.id", "tool.call.id")
    call_id = str(call_id) if call_id is not None else f"span-{span.span_id}"
    arguments = _json(
        _first(
            a,
            "gen_ai.tool.call.arguments",
            "tool.parameters",
            "input.value",
            "traceloop.entity.input",
        )
    )
    result = _json(_first(a, "gen_ai.tool.call.result", "output.value", "traceloop.entity.output"))
    envelope = {"trace_id": span.trace_id, "span_id": span.span_id, "agent": agent}
    yield Emit(
        "tool_call_requested",
        {
            "conversation_id": conversation,
            "tool_call_id": call_id,
            "tool_name": str(name),
            "arguments": arguments,
            "event_id": event_id("otlp", span.trace_id, span.span_id, "tool_call_requested"),
            "occurred_at": _when(span.start_ns),
            **envelope,
        },
    )
    duration = max(0.0, (span.end_ns - span.start_ns) / 1e6)
    if span.status_code == 2:
        yield Emit(
            "tool_call_failed",
            {
                "conversation_id": conversation,
                "tool_call_id": call_id,
                "tool_name": str(name),
                "error_type": str(a.get("error.type") or "error"),
                "error_message": span.status_message or "error",
                "duration_ms": duration,
                "event_id": event_id("otlp", span.trace_id, span.span_id, "tool_call_failed"),
                "occurred_at": _when(span.end_ns),
                **envelope,
            },
        )
    else:
        yield Emit(
            "tool_call_completed",
            {
                "conversation_id": conversation,
                "tool_call_id": call_id,
                "tool_name": str(name),
                "result": result,
                "duration_ms": duration,
                "event_id": event_id("otlp", span.trace_id, span.span_id, "tool_call_completed"),
                "occurred_at": _when(span.end_ns),
                **envelope,
            },
        )
