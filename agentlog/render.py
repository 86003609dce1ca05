"""Events as people read them (one line, control characters shown) and as machines read
them (JSON)."""

from __future__ import annotations

from typing import Any

import orjson

from agentlog.display import visible
from agentlog.events import EVENT_TYPE_BY_RECORD_NAME
from agentlog.serde import AvroDict, datetime_of

_SUMMARY_FIELDS = {
    "conversation_started": ("channel", "user_id"),
    "conversation_ended": ("outcome", "reason"),
    "system_prompt": ("agent", "prompt_version"),
    "tools_declared": ("agent",),
    "user_message": ("text",),
    "agent_message": ("agent", "text"),
    "llm_call": ("agent", "request_model", "input_tokens", "output_tokens", "latency_ms"),
    "llm_call_failed": ("agent", "request_model", "error_type", "status_code", "latency_ms"),
    "tool_call_requested": ("tool_name", "tool_call_id", "attempt", "arguments_json"),
    "tool_call_completed": ("tool_name", "tool_call_id", "attempt", "duration_ms"),
    "tool_call_failed": ("tool_name", "tool_call_id", "attempt", "error_type"),
    "intent_identified": ("intent", "confidence"),
    "handoff": ("from_agent", "to_agent"),
    "escalation": ("agent", "reason", "target"),
    "saga_started": ("saga_id", "saga"),
    "saga_step_started": ("saga_id", "step", "attempt"),
    "saga_step_completed": ("saga_id", "step"),
    "saga_step_failed": ("saga_id", "step", "phase", "timed_out", "error_type"),
    "saga_step_compensated": ("saga_id", "step", "reason"),
    "saga_ended": ("saga_id", "outcome", "reason"),
}


def event_type_of(record: AvroDict) -> str:
    return EVENT_TYPE_BY_RECORD_NAME[record["payload"][0]]


def iso_time(micros: int) -> str:
    """UTC microseconds as ISO 8601 with milliseconds: 2026-11-02T09:00:05.123Z."""
    return datetime_of(micros).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def one_line(record: AvroDict, partition: int, offset: int) -> str:
    kind = event_type_of(record)
    body = record["payload"][1]
    fields = _SUMMARY_FIELDS.get(kind, ())
    if kind == "tools_declared":
        # A declaration for no agent in particular (@recorder.tool's) names none.
        agent = f"agent={body['agent']} " if body.get("agent") else ""
        detail = f"{agent}tools={','.join(t['name'] for t in body['tools'])}"
    else:
        detail = " ".join(f"{f}={_short(body[f])}" for f in fields if body.get(f) is not None)
    # Every field is the record's: shown as one line whatever it holds (agentlog.display).
    return visible(
        f"{iso_time(record['occurred_at'])} {record['conversation_id']} p{partition}@{offset} "
        f"{kind} {detail}"
    )


def _short(value: Any, limit: int = 60) -> str:
    # Durations and latencies are floats measured to the nanosecond: a person reads ms.
    text = f"{round(value, 3):g}" if isinstance(value, float) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def as_json(record: AvroDict, topic: str, partition: int, offset: int) -> str:
    return orjson.dumps(
        {
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "event_id": record["event_id"],
            "conversation_id": record["conversation_id"],
            "occurred_at": iso_time(record["occurred_at"]),
            "event_type": event_type_of(record),
            "source": record["source"],
            "trace_id": record["trace_id"],
            "span_id": record["span_id"],
            "causation_id": record["causation_id"],
            "payload": record["payload"][1],
        }
    ).decode()
