"""A replay for machines: `jsonl` (one event per line, as `agentlog tail --json` prints
them) and `json` (one document: where the conversation sits, its events, its state).
Times are ISO 8601 UTC; JSON text fields stay the text that was recorded. An LLM call
(of any schema version) and a failed one also carry `llm_call`: the call in the one
structured shape (OpenTelemetry GenAI messages; docs/llm-calls.md)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from agentlog.consumers.projection import RecordedEvent, Row
from agentlog.consumers.projections import BUILT_IN
from agentlog.llm_calls import structured_fields
from agentlog.replay.conversation import Entry, Replay, iso, relative, time_of

_TIMESTAMP_COLUMNS = {
    table.name: [c for c, kind in table.columns.items() if kind == "timestamp"]
    for projection in BUILT_IN.values()
    for table in projection.tables
}


def event_dict(entry: Entry, start_micros: int, repeat_of: int | None = None) -> dict[str, Any]:
    """The entry for machines; `repeat_of`: the offset of the earlier record of its event
    id (this one changes nothing), as `repeat_of_offset`."""
    where = {"topic": entry.topic, "partition": entry.partition, "offset": entry.offset}
    since = relative(time_of(entry) - start_micros)
    if not isinstance(entry, RecordedEvent):
        return {
            **where,
            "timestamp": iso(entry.timestamp_micros),
            "since_start": since,
            "undecodable": entry.problem,
            "size": entry.size,
        }
    repeat = {} if repeat_of is None else {"repeat_of_offset": repeat_of}
    structured = {}
    if entry.event_type in ("llm_call", "llm_call_failed"):
        structured = {"llm_call": _structured(entry.event_type, entry.payload)}
    return {
        **where,
        **repeat,
        "event_id": entry.event_id,
        "conversation_id": entry.conversation_id,
        "occurred_at": iso(entry.occurred_at),
        "since_start": since,
        "event_type": entry.event_type,
        "source": entry.source,
        "trace_id": entry.trace_id,
        "span_id": entry.span_id,
        "causation_id": entry.causation_id,
        "payload": entry.payload,
        **structured,
    }


def _structured(event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    call = structured_fields(event_type, payload)
    return {
        "input_messages": call.input_messages,
        "system_instructions": call.system_instructions,
        "tool_definitions": call.tool_definitions,
        "output_messages": call.output_messages,
        "request_parameters": call.request_parameters,
        "finish_reasons": call.finish_reasons,
        "tool_calls": [
            {"id": c.id, "name": c.name, "arguments": c.arguments} for c in call.tool_calls
        ],
        # False: recorded before v4, when only the answer's text was kept
        "model_tool_calls_known": call.model_tool_calls_known,
    }


def _row(table: str, row: Row) -> Row:
    out = dict(row)
    for column in _TIMESTAMP_COLUMNS.get(table, ()):
        if out.get(column) is not None:
            out[column] = iso(out[column])
    return out


def document(replay: Replay) -> dict[str, Any]:
    location = replay.location
    start = replay.start_micros
    repeats = replay.repeat_of
    return {
        "conversation_id": replay.conversation_id,
        "topic": replay.topic,
        "partition": replay.partition,
        "read": {
            "method": location.method,
            "ranges": [
                [start, replay.partition_end if stop is None else stop]
                for start, stop in location.ranges
            ],
            "partition_end": replay.partition_end,
            "records_read": replay.records_read,
        },
        "notes": replay.notes,
        "stopped_at": replay.stopped,
        "events_recorded": len(replay.recorded) - len(repeats),
        "repeated_records": len(repeats),
        "events": [event_dict(e, start, repeats.get(e.offset)) for e in replay.entries],
        "state": {table: [_row(table, r) for r in rows] for table, rows in replay.state.items()},
    }


def as_json(replay: Replay) -> str:
    return orjson.dumps(document(replay), option=orjson.OPT_INDENT_2).decode()


def as_jsonl(replay: Replay) -> Iterator[str]:
    start = replay.start_micros
    repeats = replay.repeat_of
    for entry in replay.entries:
        yield orjson.dumps(event_dict(entry, start, repeats.get(entry.offset))).decode()
