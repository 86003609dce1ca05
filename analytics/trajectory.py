"""A conversation's events as a chat trajectory: system, user, assistant and tool
messages, the tools it declared, and where it sits in the log.

How events become messages (one definition, used by every training export):

- `system_prompt` -> a system message; `user_message` -> a user message.
- `agent_message` -> an assistant message with the agent's text (what the user saw).
- `llm_call` -> its output becomes an assistant message unless the agent's own message
  replaces it (an `agent_message` before the next user message, LLM call or tool call);
  an output followed by tool calls is the content of the message making those calls.
- `tool_call_requested` (attempt 1) -> a call (`id`, `type: function`, name, arguments
  as JSON text) of the latest assistant message, if no user or system message and no
  result of its calls came after it (calls made together are parallel calls); else of a
  new assistant message without content (a call made after a result is the next step).
  Retries are the same call.
- The call's final outcome -> a tool message with its `tool_call_id`, right after the
  calls' message and the results before it: a completed call's result JSON, or a failed
  call's `{"error": {"type": ..., "message": ...}}`.
- `tools_declared` -> `tools` (`type: function`, name, description, JSON-schema
  parameters), each name once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

Message = dict[str, Any]

# The columns of the archive a trajectory is built from, in this order.
STEP_COLUMNS = (
    "conversation_id",
    "event_type",
    "topic",
    "partition",
    "offset",
    "text",
    "tool_call_id",
    "tool_name",
    "arguments_json",
    "result_json",
    "error_type",
    "error_message",
    "attempt",
    "outcome",
    "tools_json",
)
# Event types that shape a trajectory (the others only count in its provenance).
SHAPING = (
    "system_prompt",
    "user_message",
    "agent_message",
    "llm_call",
    "tool_call_requested",
    "tool_call_completed",
    "tool_call_failed",
    "tools_declared",
    "escalation",
    "conversation_ended",
)


def error_content(error_type: str | None, message: str | None) -> str:
    return orjson.dumps({"error": {"type": error_type, "message": message}}).decode()


@dataclass
class Trajectory:
    conversation_id: str
    messages: list[Message] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)
    # partition -> [first, last] offset of the conversation's events there
    ranges: dict[int, list[int]] = field(default_factory=dict)
    topic: str = ""
    events: int = 0
    escalated: bool = False
    failed_calls: set[str] = field(default_factory=set)
    call_names: dict[str, str] = field(default_factory=dict)

    @property
    def parallel_tool_calls(self) -> bool:
        return any(len(m.get("tool_calls") or ()) > 1 for m in self.messages)

    def provenance(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id,
            "topic": self.topic,
            "offsets": [
                {"partition": p, "first": first, "last": last}
                for p, (first, last) in sorted(self.ranges.items())
            ],
            "events": self.events,
        }


class TrajectoryBuilder:
    """Folds one conversation's events, in log order, into a `Trajectory`."""

    __slots__ = ("t", "_pending", "_open", "_call_message", "_outcomes", "_tool_names")

    def __init__(self, conversation_id: str) -> None:
        self.t = Trajectory(conversation_id)
        self._pending: str | None = None  # an LLM output no message carries yet
        self._open: Message | None = None  # the assistant message calls may join
        self._call_message: dict[str, Message] = {}
        # call id -> (tool message content, failed)
        self._outcomes: dict[str, tuple[str, bool]] = {}
        self._tool_names: set[str] = set()

    def add(self, row: tuple[Any, ...]) -> None:
        (
            _,
            kind,
            topic,
            partition,
            offset,
            text,
            call_id,
            tool_name,
            arguments,
            result,
            error_type,
            error_message,
            attempt,
            outcome,
            tools_json,
        ) = row
        t = self.t
        t.events += 1
        span = t.ranges.get(partition)
        if span is None:
            t.ranges[partition] = [offset, offset]
            t.topic = topic
        else:
            if offset < span[0]:
                span[0] = offset
            if offset > span[1]:
                span[1] = offset
        messages = t.messages
        if kind == "user_message":
            self._flush()
            messages.append({"role": "user", "content": text})
            self._open = None
        elif kind == "agent_message":
            self._pending = None  # what the agent said replaces the model's draft
            self._open = {"role": "assistant", "content": text}
            messages.append(self._open)
        elif kind == "llm_call":
            self._flush()
            self._pending = text
        elif kind == "tool_call_requested":
            if call_id in self._call_message:
                return  # a retry of a call already made
            if self._pending is not None or self._open is None:
                self._open = {"role": "assistant", "content": self._pending}
                self._pending = None
                messages.append(self._open)
            calls = self._open.setdefault("tool_calls", [])
            calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": tool_name, "arguments": arguments},
                }
            )
            self._call_message[call_id] = self._open
            t.call_names[call_id] = tool_name
        elif kind == "tool_call_completed" or kind == "tool_call_failed":
            if kind == "tool_call_completed":
                outcome_of_call = (result, False)
            else:
                outcome_of_call = (error_content(error_type, error_message), True)
            self._outcomes.pop(call_id, None)  # the latest outcome's place counts
            self._outcomes[call_id] = outcome_of_call
            if self._open is not None and self._call_message.get(call_id) is self._open:
                self._open = None  # a call after a result is the next step, not a sibling
        elif kind == "system_prompt":
            self._flush()
            messages.append({"role": "system", "content": text})
            self._open = None
        elif kind == "tools_declared":
            for tool in orjson.loads(tools_json)["tools"]:
                if tool["name"] not in self._tool_names:
                    self._tool_names.add(tool["name"])
                    t.tools.append(
                        {
                            "type": "function",
                            "function": {
                                "name": tool["name"],
                                "description": tool["description"],
                                "parameters": orjson.loads(tool["parameters_json"]),
                            },
                        }
                    )
        elif kind == "escalation":
            t.escalated = True
        elif kind == "conversation_ended":
            self._flush()
            if outcome == "escalated":
                t.escalated = True

    def _flush(self) -> None:
        if self._pending is not None:
            self._open = {"role": "assistant", "content": self._pending}
            self.t.messages.append(self._open)
            self._pending = None

    def finish(self) -> Trajectory:
        self._flush()
        t = self.t
        messages = t.messages
        # Each result right after its calls' message and the results placed before it.
        position = {id(m): i for i, m in enumerate(messages)}
        placed: dict[int, list[Message]] = {}
        for call_id, (content, failed) in self._outcomes.items():
            holder = self._call_message.get(call_id)
            if holder is None:
                continue  # a result without its request: not part of any turn
            if failed:
                t.failed_calls.add(call_id)
            placed.setdefault(position[id(holder)], []).append(
                {"role": "tool", "tool_call_id": call_id, "content": content}
            )
        if placed:
            merged: list[Message] = []
            for index, message in enumerate(messages):
                merged.append(message)
                merged.extend(placed.get(index, ()))
            t.messages = merged
        return t


def weigh(trajectory: Trajectory, failed_weight: int) -> None:
    """Give every assistant message a `weight`: `failed_weight` where one of its tool
    calls finally failed, else 1."""
    for message in trajectory.messages:
        if message["role"] == "assistant":
            calls = message.get("tool_calls") or ()
            failed = any(c["id"] in trajectory.failed_calls for c in calls)
            message["weight"] = failed_weight if failed else 1


def as_openai(trajectory: Trajectory) -> dict[str, Any]:
    example: dict[str, Any] = {"messages": trajectory.messages}
    if trajectory.tools:
        example["tools"] = trajectory.tools
    if trajectory.parallel_tool_calls:
        example["parallel_tool_calls"] = True
    return example


def as_trl(trajectory: Trajectory) -> dict[str, Any]:
    """TRL's conversational format: arguments as objects, tool messages with `name`.
    Arguments that are not JSON stay text (validation reports them)."""
    messages = []
    for message in trajectory.messages:
        if message["role"] == "tool":
            message = {**message, "name": trajectory.call_names.get(message["tool_call_id"])}
        elif message.get("tool_calls"):
            message = {
                **message,
                "tool_calls": [
                    {**call, "function": {**call["function"], "arguments": _object(call)}}
                    for call in message["tool_calls"]
                ],
            }
        messages.append(message)
    example: dict[str, Any] = {"messages": messages}
    if trajectory.tools:
        example["tools"] = trajectory.tools
    return example


def _object(call: dict[str, Any]) -> Any:
    text = call["function"]["arguments"]
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
