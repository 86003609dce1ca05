"""Anthropic Messages requests and responses in the shapes of the OpenTelemetry GenAI
conventions: the fields of one whole `llm_call`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentlog.integrations._recording import json_value, parameters, plain, text_parts

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_call",
    "refusal": "content_filter",
}
_FIELDS = {"messages", "model", "tools", "system", "timeout"}


def _block_parts(block: Mapping[str, Any]) -> list[dict[str, Any]]:
    kind = block.get("type")
    if kind == "text":
        return [{"type": "text", "content": block.get("text", "")}]
    if kind == "tool_use":
        return [
            {
                "type": "tool_call",
                "id": block.get("id") or "",
                "name": block.get("name", ""),
                "arguments": plain(block.get("input")),
            }
        ]
    if kind == "thinking":
        return [{"type": "reasoning", "content": block.get("thinking", "")}]
    if kind == "image":
        source = block.get("source") or {}
        if source.get("type") == "url":
            return [{"type": "uri", "modality": "image", "uri": source.get("url", "")}]
        return [
            {
                "type": "blob",
                "modality": "image",
                "mime_type": source.get("media_type"),
                "content": source.get("data", ""),
            }
        ]
    return [{**block, "type": str(kind or "unknown")}]


def _result_text(content: Any) -> Any:
    if isinstance(content, list):
        texts = [b.get("text", "") for b in content if isinstance(b, dict)]
        return json_value("".join(texts))
    return json_value(content)


def input_messages(messages: Any) -> list[dict[str, Any]]:
    """Anthropic messages as OTel InputMessages: a user message's tool results become a
    `tool` message before what else it says."""
    shaped: list[dict[str, Any]] = []
    for message in (plain(m) for m in messages or ()):
        if not isinstance(message, dict):
            continue
        role = message.get("role") or "user"
        content = message.get("content")
        if isinstance(content, str):
            shaped.append({"role": role, "parts": text_parts(content)})
            continue
        results = []
        parts: list[dict[str, Any]] = []
        for block in content or ():
            if not isinstance(block, dict):
                continue
            if block.get("type") == "tool_result":
                results.append(
                    {
                        "type": "tool_call_response",
                        "id": block.get("tool_use_id") or "",
                        "response": _result_text(block.get("content")),
                    }
                )
            else:
                parts.extend(_block_parts(block))
        if results:
            shaped.append({"role": "tool", "parts": results})
        if parts or not results:
            shaped.append({"role": role, "parts": parts})
    return shaped


def tool_definitions(tools: Any) -> list[dict[str, Any]] | None:
    if not tools:
        return None
    found = []
    for tool in (plain(t) for t in tools):
        if not isinstance(tool, dict):
            continue
        if "input_schema" in tool:
            found.append(
                {
                    "type": "function",
                    "name": tool.get("name", ""),
                    "description": tool.get("description") or "",
                    "parameters": tool.get("input_schema") or {},
                }
            )
        else:  # a server tool (web search...), as Anthropic wrote it
            found.append(tool)
    return found


def request(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    system = kwargs.get("system")
    return {
        "request_model": str(kwargs.get("model") or ""),
        "input_messages": input_messages(kwargs.get("messages")),
        "system_instructions": text_parts(system) if isinstance(system, str | list) else None,
        "tool_definitions": tool_definitions(kwargs.get("tools")),
        "request_parameters": parameters(kwargs, _FIELDS),
    }


def response(message: Mapping[str, Any]) -> dict[str, Any]:
    """The output fields of `llm_call` from a Message's JSON."""
    parts: list[dict[str, Any]] = []
    for block in message.get("content") or ():
        if isinstance(block, dict):
            parts.extend(_block_parts(block))
    stop = message.get("stop_reason")
    usage = message.get("usage") or {}
    return {
        "output_messages": [
            {"role": "assistant", "parts": parts, "finish_reason": _FINISH.get(stop or "", "stop")}
        ],
        "finish_reasons": [stop] if stop else [],
        "finish_reason": stop,
        "response_id": message.get("id"),
        "response_model": message.get("model"),
        "input_tokens": usage.get("input_tokens") or 0,
        "output_tokens": usage.get("output_tokens") or 0,
        "cache_read_input_tokens": usage.get("cache_read_input_tokens"),
        "cache_creation_input_tokens": usage.get("cache_creation_input_tokens"),
        "provider_response": dict(message),
    }


class MessageEvents:
    """Raw Messages stream events assembled into the Message they stream."""

    def __init__(self) -> None:
        self.message: dict[str, Any] | None = None
        self.blocks: dict[int, dict[str, Any]] = {}
        self.partial_json: dict[int, list[str]] = {}
        self.stopped = False
        self.tokens_seen = False

    def add(self, event: Any) -> bool:
        kind = getattr(event, "type", None)
        token = False
        if kind == "message_start":
            self.message = plain(event.message)
        elif kind == "content_block_start":
            self.blocks[event.index] = plain(event.content_block)
            if self.blocks[event.index].get("type") == "tool_use":
                token = True
        elif kind == "content_block_delta":
            block = self.blocks.setdefault(event.index, {"type": "text", "text": ""})
            delta = event.delta
            dtype = getattr(delta, "type", None)
            if dtype == "text_delta":
                block["text"] = block.get("text", "") + delta.text
                token = True
            elif dtype == "input_json_delta":
                self.partial_json.setdefault(event.index, []).append(delta.partial_json)
                token = True
            elif dtype == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + delta.thinking
                token = True
            elif dtype == "signature_delta":
                block["signature"] = delta.signature
        elif kind == "message_delta" and self.message is not None:
            self.message.update(plain(event.delta))
            usage = plain(getattr(event, "usage", None)) or {}
            held = self.message.setdefault("usage", {})
            held.update({k: v for k, v in usage.items() if v is not None})
        elif kind == "message_stop":
            self.stopped = True
        if token and not self.tokens_seen:
            self.tokens_seen = True
            return True
        return False

    def assembled(self) -> dict[str, Any] | None:
        if self.message is None:
            return None
        for index, pieces in self.partial_json.items():
            text = "".join(pieces)
            self.blocks[index]["input"] = json_value(text) if text else {}
        return {**self.message, "content": [b for _, b in sorted(self.blocks.items())]}
