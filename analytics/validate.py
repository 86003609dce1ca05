"""The checks a training example passes before it is written, as OpenAI's fine-tuning
file checks do: known roles and keys only, content where it is required, every tool
call answered by a tool message with its id and no orphan tool message, arguments that
parse, functions declared in `tools`, at least one assistant message.

`problem(example, format)` returns the first thing wrong, or None.
"""

from __future__ import annotations

from typing import Any

import orjson

_KEYS = {
    "system": {"role", "content", "name"},
    "user": {"role", "content", "name"},
    "assistant": {"role", "content", "tool_calls", "weight", "name"},
    "tool": {"role", "content", "tool_call_id"},
}
_TRL_KEYS = {**_KEYS, "tool": {"role", "content", "tool_call_id", "name"}}
_ANY: set[str] = set()  # stands for "any function": calls need no declaration
_TOP_KEYS = {"openai": {"messages", "tools", "parallel_tool_calls"}, "trl": {"messages", "tools"}}


def problem(
    example: dict[str, Any], form: str = "openai", *, undeclared_ok: bool = False
) -> str | None:
    """The first thing wrong with `example`, or None. `undeclared_ok`: calls of an
    example without `tools` need no declaration (history recorded without them)."""
    unknown = set(example) - _TOP_KEYS[form]
    if unknown:
        return f"unknown keys {sorted(unknown)}"
    messages = example.get("messages")
    if not isinstance(messages, list) or not messages:
        return "no messages"
    declared, why = _declared(example.get("tools"))
    if why:
        return why
    if declared is None and undeclared_ok:
        declared = _ANY
    if "parallel_tool_calls" in example and not isinstance(example["parallel_tool_calls"], bool):
        return "parallel_tool_calls is not true or false"
    keys = _KEYS if form == "openai" else _TRL_KEYS
    unanswered: dict[str, int] = {}
    seen_calls: set[str] = set()
    assistants = 0
    for index, message in enumerate(messages):
        where = f"message {index}"
        if not isinstance(message, dict):
            return f"{where} is not an object"
        role = message.get("role")
        if not isinstance(role, str) or role not in keys:
            return f"{where} has unknown role {role!r}"
        extra = set(message) - keys[role]
        if extra:
            return f"{where} ({role}) has unknown keys {sorted(extra)}"
        content = message.get("content")
        if role == "assistant":
            assistants += 1
            if unanswered:
                first = next(iter(unanswered))
                return f"tool call {first} (message {unanswered[first]}) is not answered"
            why = _assistant(message, where, declared, seen_calls, form)
            if why:
                return why
            for call in message.get("tool_calls") or ():
                unanswered[call["id"]] = index
        elif role == "tool":
            if not isinstance(content, str):
                return f"{where} (tool) has no text content"
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or call_id not in unanswered:
                return f"{where} (tool) answers no open tool call ({call_id!r})"
            del unanswered[call_id]
            if form == "trl" and not isinstance(message.get("name"), str):
                return f"{where} (tool) has no name"
        else:
            if unanswered:
                first = next(iter(unanswered))
                return f"tool call {first} (message {unanswered[first]}) is not answered"
            if not isinstance(content, str) or not content:
                return f"{where} ({role}) has no content"
    if unanswered:
        first = next(iter(unanswered))
        return f"tool call {first} (message {unanswered[first]}) is not answered"
    if not assistants:
        return "no assistant message"
    return None


def _declared(tools: Any) -> tuple[set[str] | None, str | None]:
    """The names declared in `tools` (None if there is no `tools`), or what is wrong."""
    if tools is None:
        return None, None
    if not isinstance(tools, list):
        return None, "tools is not a list"
    names: set[str] = set()
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type") != "function":
            return None, f"tool {index} is not a function declaration"
        name = function.get("name")
        if not isinstance(name, str) or not name:
            return None, f"tool {index} has no name"
        if name in names:
            return None, f"tool {name!r} is declared twice"
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            return None, f"tool {name!r} has parameters that are not a JSON schema object"
        names.add(name)
    return names, None


def _assistant(
    message: dict[str, Any], where: str, declared: set[str] | None, seen: set[str], form: str
) -> str | None:
    content = message.get("content")
    calls = message.get("tool_calls")
    if content is not None and not isinstance(content, str):
        return f"{where} (assistant) has content that is not text"
    if "weight" in message and message["weight"] not in (0, 1):
        return f"{where} (assistant) has weight {message['weight']!r}, not 0 or 1"
    if calls is None:
        if not content:
            return f"{where} (assistant) has neither content nor tool calls"
        return None
    if not isinstance(calls, list) or not calls:
        return f"{where} (assistant) has tool_calls that are not a list of calls"
    for call in calls:
        if not isinstance(call, dict) or set(call) != {"id", "type", "function"}:
            return f"{where} (assistant) has a tool call without exactly id, type, function"
        call_id = call["id"]
        if not isinstance(call_id, str) or not call_id:
            return f"{where} (assistant) has a tool call without an id"
        if call_id in seen:
            return f"{where} (assistant) repeats tool call id {call_id}"
        seen.add(call_id)
        function = call["function"]
        if call["type"] != "function" or not isinstance(function, dict):
            return f"{where} (assistant): tool call {call_id} is not a function call"
        if set(function) != {"name", "arguments"}:
            return f"{where} (assistant): tool call {call_id} needs exactly name and arguments"
        name = function["name"]
        if not isinstance(name, str) or not name:
            return f"{where} (assistant): tool call {call_id} has no function name"
        if declared is not _ANY and (declared is None or name not in declared):
            return f"{where} (assistant): tool call {call_id} calls {name!r}, not declared in tools"
        arguments = function["arguments"]
        if form == "openai":
            if not isinstance(arguments, str):
                return f"{where} (assistant): tool call {call_id} has arguments that are not text"
            try:
                arguments = orjson.loads(arguments)
            except orjson.JSONDecodeError:
                return f"{where} (assistant): tool call {call_id} has arguments that are not JSON"
        if not isinstance(arguments, dict):
            return f"{where} (assistant): tool call {call_id} has arguments that are not an object"
    return None
