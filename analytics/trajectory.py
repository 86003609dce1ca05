"""A conversation's events as a chat trajectory: system, user, assistant and tool
messages, the tools it declared, and where it sits in the log.

How events become messages (one definition, used by every training export):

- `system_prompt` -> a system message; `user_message` -> a user message.
- `agent_message` -> an assistant message with the agent's text (what the user saw).
- `llm_call` recorded whole (schema v4: its output messages say what the model
  returned): the tool calls the model chose are the calls (`id`, `type: function`,
  name, arguments as JSON text) of one assistant message, with its text as content
  (parallel calls: one message). A `tool_call_requested` answers the model's call of the
  same id (or else the first unanswered one of the same name); one the model did not
  ask for (agent code calling a tool) is no assistant turn and is left out.
- `llm_call` from before v4 (only its output text is known) -> its output becomes an
  assistant message unless the agent's own message replaces it (an `agent_message`
  before the next user message, LLM call or tool call); the tool calls are guessed:
  an output followed by tool calls is the content of the message making those calls,
  and `tool_call_requested` (attempt 1) -> a call of the latest assistant message, if no
  user or system message and no result of its calls came after it (calls made together
  are parallel calls); else of a new assistant message without content (a call made
  after a result is the next step). Retries are the same call. The provenance says
  which (`tool_calls_from`: `model` or `guessed`).
- The call's final outcome -> a tool message with its `tool_call_id`, right after the
  calls' message and the results before it: a completed call's result JSON, or a failed
  call's `{"error": {"type": ..., "message": ...}}`.
- `tools_declared`, and the function tools a v4 `llm_call` offered (its tool
  definitions) -> `tools` (`type: function`, name, description, JSON-schema
  parameters), each name once.

Whether the conversation was escalated and which calls finally failed are not decided
here: they are the conversation state's (`agentlog.consumers.projections.verdicts`, the
projector's fold), handed to `finish`; a trajectory only places them on its messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from agentlog.consumers.projections.verdicts import Verdict
from agentlog.llm_calls import json_text, structured_fields

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
    "payload_json",  # the whole payload (read only of tools_declared and llm_call)
)
# The event types whose whole payload the trajectory reads.
WITH_PAYLOAD = ("tools_declared", "llm_call")


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
    # What the conversation state says of the conversation (escalated, the recorded ids
    # of the calls that finally failed), as `finish` was given it; None: not asked for.
    verdict: Verdict | None = None
    # The calls of the messages (by the ids the messages give them) that finally failed.
    failed_calls: set[str] = field(default_factory=set)
    call_names: dict[str, str] = field(default_factory=dict)
    # Whose tool calls the assistant messages carry: "model" (v4 LLM calls said so),
    # "guessed" (attached by the pre-v4 heuristic), or None (no LLM call said either).
    tool_calls_from: str | None = None

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
            "tool_calls_from": self.tool_calls_from,
        }


class TrajectoryBuilder:
    """Folds one conversation's events, in log order, into a `Trajectory`."""

    __slots__ = (
        "t",
        "_pending",
        "_open",
        "_call_message",
        "_outcomes",
        "_tool_names",
        "_model_calls",
        "_alias",
    )

    def __init__(self, conversation_id: str) -> None:
        self.t = Trajectory(conversation_id)
        self._pending: str | None = None  # an LLM output no message carries yet
        self._open: Message | None = None  # the assistant message calls may join
        self._call_message: dict[str, Message] = {}
        # call id -> the tool message's content (the call's latest outcome)
        self._outcomes: dict[str, str] = {}
        self._tool_names: set[str] = set()
        # While the latest LLM call was recorded whole: its tool calls not answered yet
        # (id -> name), else None (the pre-v4 guess applies).
        self._model_calls: dict[str, str] | None = None
        self._alias: dict[str, str] = {}  # recorded call id -> the model's call id

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
            payload_json,
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
            self._llm_call(text, payload_json, f"p{partition}o{offset}")
        elif kind == "tool_call_requested":
            if self._model_calls is not None:
                self._answer_model_call(call_id, tool_name)
                return
            if call_id in self._call_message:
                return  # a retry of a call already made
            t.tool_calls_from = "guessed"
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
            call_id = self._alias.get(call_id, call_id)
            if kind == "tool_call_completed":
                content = result
            else:
                content = error_content(error_type, error_message)
            self._outcomes.pop(call_id, None)  # the latest outcome's place counts
            self._outcomes[call_id] = content
            if self._open is not None and self._call_message.get(call_id) is self._open:
                self._open = None  # a call after a result is the next step, not a sibling
        elif kind == "system_prompt":
            self._flush()
            messages.append({"role": "system", "content": text})
            self._open = None
        elif kind == "tools_declared":
            for tool in orjson.loads(payload_json)["tools"]:
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
        elif kind == "conversation_ended":
            self._flush()

    def _llm_call(self, text: str | None, payload_json: str | None, where: str) -> None:
        fields = _loads_object(payload_json)
        if fields.get("output_messages_json") is None:
            # Recorded before v4 (or without the answer's parts): the guess applies.
            self._model_calls = None
            self._pending = text
            return
        call = structured_fields("llm_call", fields)
        self._model_calls = {}
        self._declare(call.tool_definitions)
        if self.t.tool_calls_from is None:
            self.t.tool_calls_from = "model"
        if not call.tool_calls:
            self._pending = text
            return
        message: Message = {"role": "assistant", "content": text or None, "tool_calls": []}
        for n, made in enumerate(call.tool_calls):
            # A call without an id (some providers) gets one from its place in the log.
            call_id = made.id or f"call-{where}-{n}"
            arguments = made.arguments
            message["tool_calls"].append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {
                        "name": made.name,
                        "arguments": arguments
                        if isinstance(arguments, str)
                        else json_text(arguments),
                    },
                }
            )
            self._call_message[call_id] = message
            self._model_calls[call_id] = made.name
            self.t.call_names[call_id] = made.name
        self.t.messages.append(message)
        self._open = None

    def _declare(self, definitions: list[dict[str, Any]]) -> None:
        """The function tools an LLM call offered (v4), as `tools_declared` gives them."""
        for tool in definitions:
            name = tool.get("name")
            if tool.get("type", "function") != "function" or not isinstance(name, str):
                continue
            if name not in self._tool_names:
                self._tool_names.add(name)
                description = tool.get("description")
                parameters = tool.get("parameters")
                self.t.tools.append(
                    {
                        "type": "function",
                        "function": {
                            "name": name,
                            "description": description if isinstance(description, str) else "",
                            "parameters": parameters if isinstance(parameters, dict) else {},
                        },
                    }
                )

    def _answer_model_call(self, call_id: str, tool_name: str) -> None:
        """A recorded tool call of the model's latest answer: the same id, else the first
        unanswered call of that tool (agent code that numbers calls its own way)."""
        unanswered = self._model_calls
        assert unanswered is not None
        if call_id in self._alias or unanswered.pop(call_id, None) is not None:
            return
        if call_id in self._call_message:
            return  # a retry of a call already answered
        for model_id, name in unanswered.items():
            if name == tool_name:
                self._alias[call_id] = model_id
                del unanswered[model_id]
                return

    def _flush(self) -> None:
        if self._pending is not None:
            self._open = {"role": "assistant", "content": self._pending}
            self.t.messages.append(self._open)
            self._pending = None

    def finish(self, verdict: Verdict | None) -> Trajectory:
        """The trajectory, with `verdict` (the conversation state's, or None when nobody
        asked) on it: the calls it says finally failed are marked by the ids the
        messages give them."""
        self._flush()
        t = self.t
        t.verdict = verdict
        for recorded_id in verdict.failed_calls if verdict is not None else ():
            call_id = self._alias.get(recorded_id, recorded_id)
            if call_id in self._call_message:
                t.failed_calls.add(call_id)
        messages = t.messages
        # Each result right after its calls' message and the results placed before it.
        position = {id(m): i for i, m in enumerate(messages)}
        placed: dict[int, list[Message]] = {}
        for call_id, content in self._outcomes.items():
            holder = self._call_message.get(call_id)
            if holder is None:
                continue  # a result without its request: not part of any turn
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


def _loads_object(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def weigh(trajectory: Trajectory, failed_weight: int) -> None:
    """Give every assistant message a `weight`: `failed_weight` where one of its tool
    calls finally failed (as the verdict `finish` was given says), else 1."""
    if trajectory.verdict is None:
        raise ValueError("weighing a trajectory needs its verdict: build it with verdicts")
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
