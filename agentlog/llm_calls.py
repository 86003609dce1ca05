"""The structured view of an LLM call: one shape for every `llm_call` ever recorded.

Since schema v4 an LLM call carries its request and response as the messages of the
OpenTelemetry GenAI conventions (input/output messages with typed parts, system
instructions, tool definitions; docs/llm-calls.md names the version followed). Records
written before v4 carry the messages sent as free-form JSON (`input_json`, usually the
OpenAI chat list) and the answer as one text (`output_text`): `structured_call` folds
them into the same shape, so the fold, replay, the SQL views and the exports read one
thing. What an older record cannot say, it does not invent: its answer is a text part
only, and `model_tool_calls_known` is False, so a consumer that needs the model's tool
calls knows it must guess.

Everything here reads text written by whoever can produce to the topic: malformed JSON
or unexpected shapes become text parts, never an exception.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from agentlog.events import LlmCall, LlmCallFailed

# The OTel GenAI JSON schemas this shape follows (status "development" upstream).
OTEL_GENAI_SCHEMAS = (
    "open-telemetry/semantic-conventions-genai model/gen-ai/"
    "gen-ai-{input,output}-messages.json, gen-ai-system-instructions.json, "
    "gen-ai-tool-definitions.json at commit 2b902ce"
)

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class ModelToolCall:
    """A tool call the model chose (an output `tool_call` part)."""

    id: str | None
    name: str
    arguments: Any


@dataclass(frozen=True)
class StructuredLlmCall:
    """An LLM call in the OTel GenAI shapes, whichever schema version recorded it."""

    input_messages: list[JsonObject]
    system_instructions: list[JsonObject]
    tool_definitions: list[JsonObject]
    output_messages: list[JsonObject]
    request_parameters: JsonObject
    finish_reasons: list[str]
    # True when the record says what the model returned part by part (v4 with output
    # messages); False for an older record folded from its answer text.
    model_tool_calls_known: bool
    tool_calls: list[ModelToolCall] = field(default_factory=list)

    @property
    def text(self) -> str:
        return answer_text(self.output_messages)


def structured_call(payload: LlmCall | LlmCallFailed) -> StructuredLlmCall:
    """The one reading of an `llm_call` (any version) or `llm_call_failed` payload."""
    return structured_fields(payload.event_type, payload.model_dump())


def structured_fields(event_type: str, fields: Mapping[str, Any]) -> StructuredLlmCall:
    """`structured_call` on a payload as the readers hand it on (an Avro dict of the
    current schema, `RecordedEvent.payload`); a missing field reads as its default."""
    get = fields.get
    if event_type == "llm_call_failed":
        return StructuredLlmCall(
            input_messages=messages_of(_loads(get("input_messages_json"))),
            system_instructions=parts_of(_loads(get("system_instructions_json"))),
            tool_definitions=_objects(_loads(get("tool_definitions_json"))),
            output_messages=[],
            request_parameters=_object(_loads(get("request_parameters_json"))),
            finish_reasons=["error"],
            model_tool_calls_known=True,
        )
    finish_reason = get("finish_reason")
    finish_reason = finish_reason if isinstance(finish_reason, str) else None
    if get("input_messages_json") is not None:
        inputs = messages_of(_loads(get("input_messages_json")))
    else:
        inputs = legacy_input_messages(_text(get("input_json"), "null"))
    if get("output_messages_json") is not None:
        outputs = messages_of(_loads(get("output_messages_json")), default_role="assistant")
        known = True
    else:
        outputs = [_text_answer(_text(get("output_text"), ""), finish_reason)]
        known = False
    recorded_reasons = [r for r in _list(get("finish_reasons")) if isinstance(r, str)]
    finish_reasons = recorded_reasons or ([finish_reason] if finish_reason else [])
    return StructuredLlmCall(
        input_messages=inputs,
        system_instructions=parts_of(_loads(get("system_instructions_json"))),
        tool_definitions=_objects(_loads(get("tool_definitions_json"))),
        output_messages=outputs,
        request_parameters=_object(_loads(get("request_parameters_json"))),
        finish_reasons=finish_reasons,
        model_tool_calls_known=known,
        tool_calls=model_tool_calls(outputs),
    )


def _text(value: Any, default: str) -> str:
    return value if isinstance(value, str) else default


def answer_text(output_messages: Iterable[Mapping[str, Any]] | None) -> str:
    """The text parts of the output messages, joined (what `output_text` holds)."""
    texts = []
    for message in output_messages or ():
        parts = message.get("parts") if isinstance(message, Mapping) else None
        for part in parts if isinstance(parts, list) else ():
            if isinstance(part, Mapping) and part.get("type") == "text":
                content = part.get("content")
                if isinstance(content, str):
                    texts.append(content)
    return "".join(texts)


def message_finish_reasons(output_messages: Iterable[Mapping[str, Any]] | None) -> list[str]:
    return [
        m["finish_reason"]
        for m in output_messages or ()
        if isinstance(m, Mapping) and isinstance(m.get("finish_reason"), str)
    ]


def model_tool_calls(output_messages: Iterable[JsonObject]) -> list[ModelToolCall]:
    """The `tool_call` parts of the (normalized) output messages, in order."""
    calls = []
    for message in output_messages:
        for part in message["parts"]:
            if part.get("type") == "tool_call" and isinstance(part.get("name"), str):
                call_id = part.get("id")
                calls.append(
                    ModelToolCall(
                        call_id if isinstance(call_id, str) else None,
                        part["name"],
                        part.get("arguments"),
                    )
                )
    return calls


# -- normalizing what the record holds ---------------------------------------------------


def messages_of(value: Any, default_role: str = "user") -> list[JsonObject]:
    """OTel messages, each a dict with a string `role` and a list of dict `parts` (what
    is not one becomes a text part holding its JSON, so nothing is dropped)."""
    if value is None:
        return []
    if not isinstance(value, list):
        value = [value]
    messages = []
    for item in value:
        if not isinstance(item, dict):
            messages.append({"role": default_role, "parts": [_text_part(item)]})
            continue
        message = dict(item)
        role = message.get("role")
        message["role"] = role if isinstance(role, str) else default_role
        message["parts"] = parts_of(message.get("parts"))
        messages.append(message)
    return messages


def parts_of(value: Any) -> list[JsonObject]:
    if value is None:
        return []
    if not isinstance(value, list):
        value = [value]
    return [
        dict(p) if isinstance(p, dict) and isinstance(p.get("type"), str) else _text_part(p)
        for p in value
    ]


def legacy_input_messages(input_json: str) -> list[JsonObject]:
    """Fold the free-form `input_json` of a pre-v4 call into OTel input messages.

    The usual shape is the OpenAI chat list ({role, content, tool_calls?,
    tool_call_id?}); content that is a string or a list of OpenAI content parts becomes
    text parts, an assistant's `tool_calls` become tool_call parts and a `tool` message
    a tool_call_response part. Anything else is kept as one user text part."""
    value = _loads(input_json)
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": "user", "parts": [{"type": "text", "content": value}]}]
    if not isinstance(value, list) or not all(isinstance(m, dict) for m in value):
        return [{"role": "user", "parts": [_text_part(value)]}]
    return [_legacy_message(m) for m in value]


def _legacy_message(message: Mapping[str, Any]) -> JsonObject:
    if "parts" in message:  # already the OTel shape
        return messages_of([dict(message)])[0]
    role = message.get("role")
    role = role if isinstance(role, str) else "user"
    parts: list[JsonObject] = []
    content = message.get("content")
    if role == "tool":
        call_id = message.get("tool_call_id")
        parts.append(
            {
                "type": "tool_call_response",
                "id": call_id if isinstance(call_id, str) else None,
                "response": content,
            }
        )
    elif isinstance(content, str):
        parts.append({"type": "text", "content": content})
    elif isinstance(content, list):
        for piece in content:
            if isinstance(piece, dict) and isinstance(piece.get("text"), str):
                parts.append({"type": "text", "content": piece["text"]})
            elif piece is not None:
                parts.append(_text_part(piece))
    elif content is not None:
        parts.append(_text_part(content))
    for call in _list(message.get("tool_calls")):
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            call_id = call.get("id")
            parts.append(
                {
                    "type": "tool_call",
                    "id": call_id if isinstance(call_id, str) else None,
                    "name": function["name"],
                    "arguments": _arguments(function.get("arguments")),
                }
            )
    out: JsonObject = {"role": role, "parts": parts}
    if isinstance(message.get("name"), str):
        out["name"] = message["name"]
    return out


def _text_answer(text: str, finish_reason: str | None) -> JsonObject:
    message: JsonObject = {
        "role": "assistant",
        "parts": [{"type": "text", "content": text}] if text else [],
    }
    if finish_reason is not None:
        message["finish_reason"] = finish_reason
    return message


def _arguments(value: Any) -> Any:
    """OpenAI sends arguments as JSON text; OTel keeps the JSON value."""
    if isinstance(value, str):
        parsed = _loads(value, _UNPARSED)
        return value if parsed is _UNPARSED else parsed
    return value


def _text_part(value: Any) -> JsonObject:
    return {"type": "text", "content": value if isinstance(value, str) else json_text(value)}


def json_text(value: Any) -> str:
    """Compact JSON of a value read from a record (never raises)."""
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:
        return str(value)


def _objects(value: Any) -> list[JsonObject]:
    return [dict(v) for v in _list(value) if isinstance(v, dict)]


def _object(value: Any) -> JsonObject:
    return dict(value) if isinstance(value, dict) else {}


def _list(value: Any) -> Sequence[Any]:
    return value if isinstance(value, list) else ()


_UNPARSED: Any = object()


def _loads(text: Any, bad: Any = None) -> Any:
    """JSON text -> value; None for None. Text that is not JSON comes back as the text
    itself (so it is shown, not lost), or as `bad` when one is given."""
    if not isinstance(text, str):
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text if bad is None else bad
