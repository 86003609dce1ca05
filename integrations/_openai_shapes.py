"""OpenAI's requests and responses (Chat Completions and Responses) in the shapes of the
OpenTelemetry GenAI conventions: the fields of one whole `llm_call`. Plain functions of
the SDK's arguments and JSON; `agentlog.integrations.openai` calls them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentlog.integrations._recording import json_value, parameters, plain, text_parts

# Chat Completions finish reasons in the OTel OutputMessage's words.
_FINISH = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_call",
    "function_call": "tool_call",
}
# Arguments of `create` that are not request parameters (recorded elsewhere or the SDK's).
_CHAT_FIELDS = {"messages", "model", "tools", "functions", "timeout"}
_RESPONSES_FIELDS = {"input", "model", "tools", "instructions", "timeout"}


def tool_definitions(tools: Any) -> list[dict[str, Any]] | None:
    """Offered tools as `{"type": "function", "name", "description", "parameters"}`;
    tools that are not functions (web search...) as the provider wrote them."""
    if not tools or not isinstance(tools, list | tuple):
        return None
    found = []
    for tool in (plain(t) for t in tools):
        if not isinstance(tool, dict):
            continue
        function = tool.get("function") if tool.get("type") == "function" else None
        if isinstance(function, dict):  # Chat Completions: nested under "function"
            tool = {"type": "function", **function}
        if tool.get("type") == "function":
            found.append(
                {
                    "type": "function",
                    "name": tool.get("name", ""),
                    "description": tool.get("description") or "",
                    "parameters": tool.get("parameters") or {},
                }
            )
        else:
            found.append(tool)
    return found


def _tool_call_part(call: Mapping[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    return {
        "type": "tool_call",
        "id": call.get("id") or "",
        "name": function.get("name", ""),
        "arguments": json_value(function.get("arguments")),
    }


def chat_message(message: Any) -> dict[str, Any]:
    """One Chat Completions message as an OTel InputMessage."""
    m = plain(message)
    if not isinstance(m, dict):
        return {"role": "user", "parts": text_parts(str(m))}
    role = m.get("role") or "user"
    if role == "tool":
        parts = [
            {
                "type": "tool_call_response",
                "id": m.get("tool_call_id") or "",
                "response": json_value(_text_of(m.get("content"))),
            }
        ]
        return {"role": "tool", "parts": parts}
    parts = text_parts(m.get("content"))
    if m.get("refusal"):
        parts.append({"type": "refusal", "content": m["refusal"]})
    parts.extend(_tool_call_part(call) for call in m.get("tool_calls") or ())
    if m.get("function_call"):  # the deprecated single function call
        parts.append(_tool_call_part({"function": m["function_call"]}))
    shaped: dict[str, Any] = {
        "role": "system" if role == "developer" else role,
        "parts": parts,
    }
    if m.get("name"):
        shaped["name"] = m["name"]
    return shaped


def _text_of(content: Any) -> Any:
    """A tool message's content: its text (parts joined), for parsing as JSON."""
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in plain(content))
    return content


def chat_request(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "request_model": str(kwargs.get("model") or ""),
        "input_messages": [chat_message(m) for m in kwargs.get("messages") or ()],
        "tool_definitions": tool_definitions(kwargs.get("tools") or kwargs.get("functions")),
        "request_parameters": parameters(kwargs, _CHAT_FIELDS),
    }


def chat_response(completion: Mapping[str, Any]) -> dict[str, Any]:
    """The output fields of `llm_call` from a ChatCompletion's JSON."""
    outputs = []
    reasons = []
    for choice in completion.get("choices") or ():
        message = chat_message(choice.get("message") or {})
        reason = choice.get("finish_reason")
        reasons.append(reason or "")
        outputs.append(
            {
                "role": "assistant",
                "parts": message["parts"],
                "finish_reason": _FINISH.get(reason or "", reason or "stop"),
            }
        )
    usage = completion.get("usage") or {}
    return {
        "output_messages": outputs,
        "finish_reasons": reasons,
        "finish_reason": reasons[0] if reasons else None,
        "response_id": completion.get("id"),
        "response_model": completion.get("model"),
        "input_tokens": usage.get("prompt_tokens") or 0,
        "output_tokens": usage.get("completion_tokens") or 0,
        "cache_read_input_tokens": (usage.get("prompt_tokens_details") or {}).get("cached_tokens"),
        "reasoning_tokens": (usage.get("completion_tokens_details") or {}).get("reasoning_tokens"),
        "provider_response": dict(completion),
    }


class ChatChunks:
    """Chat Completions chunks assembled into the ChatCompletion they stream."""

    def __init__(self) -> None:
        self.id: str | None = None
        self.model: str | None = None
        self.created: int | None = None
        self.usage: Any = None
        self.choices: dict[int, dict[str, Any]] = {}
        self.tokens_seen = False

    def add(self, chunk: Any) -> bool:
        """Take a chunk; True when it is the first carrying the answer (a token)."""
        self.id = self.id or getattr(chunk, "id", None)
        self.model = self.model or getattr(chunk, "model", None)
        self.created = self.created or getattr(chunk, "created", None)
        if getattr(chunk, "usage", None) is not None:
            self.usage = plain(chunk.usage)
        first = False
        for choice in getattr(chunk, "choices", None) or ():
            state = self.choices.setdefault(
                choice.index, {"content": [], "refusal": [], "calls": {}, "finish": None}
            )
            delta = choice.delta
            if delta is not None:
                if delta.content:
                    state["content"].append(delta.content)
                    first = True
                if getattr(delta, "refusal", None):
                    state["refusal"].append(delta.refusal)
                    first = True
                for call in delta.tool_calls or ():
                    first = True
                    held = state["calls"].setdefault(
                        call.index, {"id": None, "name": "", "arguments": []}
                    )
                    held["id"] = held["id"] or call.id
                    if call.function is not None:
                        held["name"] = held["name"] or call.function.name or ""
                        if call.function.arguments:
                            held["arguments"].append(call.function.arguments)
            if choice.finish_reason:
                state["finish"] = choice.finish_reason
        if first and not self.tokens_seen:
            self.tokens_seen = True
            return True
        return False

    def assembled(self) -> dict[str, Any]:
        choices = []
        for index, state in sorted(self.choices.items()):
            message: dict[str, Any] = {
                "role": "assistant",
                "content": "".join(state["content"]) or None,
            }
            if state["refusal"]:
                message["refusal"] = "".join(state["refusal"])
            if state["calls"]:
                message["tool_calls"] = [
                    {
                        "id": call["id"] or "",
                        "type": "function",
                        "function": {"name": call["name"], "arguments": "".join(call["arguments"])},
                    }
                    for _, call in sorted(state["calls"].items())
                ]
            choices.append({"index": index, "message": message, "finish_reason": state["finish"]})
        completion: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if self.usage is not None:
            completion["usage"] = self.usage
        return completion


# --- Responses -----------------------------------------------------------------------


def responses_input(items: Any) -> list[dict[str, Any]]:
    """The Responses API's `input` (a string, or items) as OTel InputMessages; function
    calls in a row join one assistant message, as the model made them together."""
    if items is None:
        return []
    if isinstance(items, str):
        return [{"role": "user", "parts": text_parts(items)}]
    messages: list[dict[str, Any]] = []
    for item in (plain(i) for i in items):
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "function_call":
            part = {
                "type": "tool_call",
                "id": item.get("call_id") or "",
                "name": item.get("name", ""),
                "arguments": json_value(item.get("arguments")),
            }
            _assistant(messages).append(part)
        elif kind == "function_call_output":
            response = {
                "type": "tool_call_response",
                "id": item.get("call_id") or "",
                "response": json_value(_text_of(item.get("output"))),
            }
            messages.append({"role": "tool", "parts": [response]})
        elif kind == "reasoning":
            for summary in item.get("summary") or ():
                _assistant(messages).append({"type": "reasoning", "content": summary.get("text")})
        elif kind in (None, "message"):
            role = item.get("role") or "user"
            messages.append(
                {
                    "role": "system" if role == "developer" else role,
                    "parts": text_parts(item.get("content")),
                }
            )
        else:
            _assistant(messages).append({"type": str(kind), **item})
    return messages


def _assistant(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The parts of the assistant message at the end, made if there is none."""
    if not messages or messages[-1]["role"] != "assistant":
        messages.append({"role": "assistant", "parts": []})
    parts: list[dict[str, Any]] = messages[-1]["parts"]
    return parts


def responses_request(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    instructions = kwargs.get("instructions")
    return {
        "request_model": str(kwargs.get("model") or ""),
        "input_messages": responses_input(kwargs.get("input")),
        "system_instructions": text_parts(instructions)
        if isinstance(instructions, str | list)
        else None,
        "tool_definitions": tool_definitions(kwargs.get("tools")),
        "request_parameters": parameters(kwargs, _RESPONSES_FIELDS),
    }


def responses_response(response: Mapping[str, Any]) -> dict[str, Any]:
    """The output fields of `llm_call` from a Response's JSON."""
    parts: list[dict[str, Any]] = []
    for item in response.get("output") or ():
        kind = item.get("type")
        if kind == "message":
            parts.extend(text_parts(item.get("content")))
        elif kind == "function_call":
            parts.append(
                {
                    "type": "tool_call",
                    "id": item.get("call_id") or "",
                    "name": item.get("name", ""),
                    "arguments": json_value(item.get("arguments")),
                }
            )
        elif kind == "reasoning":
            parts.extend(
                {"type": "reasoning", "content": s.get("text", "")}
                for s in item.get("summary") or ()
            )
        else:
            parts.append({"type": str(kind), **item})
    status = response.get("status")
    incomplete = (response.get("incomplete_details") or {}).get("reason")
    if any(p["type"] == "tool_call" for p in parts):
        reason = "tool_call"
    elif incomplete == "max_output_tokens":
        reason = "length"
    elif incomplete == "content_filter":
        reason = "content_filter"
    elif status == "failed":
        reason = "error"
    else:
        reason = "stop"
    usage = response.get("usage") or {}
    return {
        "output_messages": [{"role": "assistant", "parts": parts, "finish_reason": reason}],
        "finish_reasons": [reason],
        "finish_reason": reason,
        "response_id": response.get("id"),
        "response_model": response.get("model"),
        "input_tokens": usage.get("input_tokens") or 0,
        "output_tokens": usage.get("output_tokens") or 0,
        "cache_read_input_tokens": (usage.get("input_tokens_details") or {}).get("cached_tokens"),
        "reasoning_tokens": (usage.get("output_tokens_details") or {}).get("reasoning_tokens"),
        "provider_response": dict(response),
    }


# Responses stream events that carry the answer itself (a token).
_TOKEN_EVENTS = {
    "response.output_text.delta",
    "response.refusal.delta",
    "response.function_call_arguments.delta",
    "response.reasoning_summary_text.delta",
}
_FINAL_EVENTS = {"response.completed", "response.incomplete", "response.failed"}


class ResponseEvents:
    """A Responses stream: its last response snapshot is the whole answer."""

    def __init__(self) -> None:
        self.final: dict[str, Any] | None = None
        self.tokens_seen = False
        self.error: dict[str, Any] | None = None

    def add(self, event: Any) -> bool:
        kind = getattr(event, "type", None)
        if kind in _FINAL_EVENTS:
            self.final = plain(event.response)
        elif kind == "error":
            self.error = plain(event)
        if kind in _TOKEN_EVENTS and not self.tokens_seen:
            self.tokens_seen = True
            return True
        return False
