"""The columns of an archive file: where the record sits in the log, the envelope, the
payload's key fields, and the whole payload as JSON text.

Every record of the log is archived, also one that cannot be decoded: its envelope and
payload columns are empty, `decode_error` says why and `raw_value` keeps its bytes, so
the archive holds every offset the log held.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson
import pyarrow as pa

from agentlog.errors import DecodeError
from agentlog.events import EVENT_TYPE_BY_RECORD_NAME
from agentlog.serde import decode

_MICROS_PER_DAY = 86_400_000_000

# Payload fields copied into columns of their own, by column name. `text` is what was
# said: a user's or agent's message, a system prompt, or an LLM's output.
PAYLOAD_COLUMNS: dict[str, pa.DataType] = {
    "agent": pa.string(),
    "user_id": pa.string(),
    "channel": pa.string(),
    "text": pa.string(),
    "tool_call_id": pa.string(),
    "tool_name": pa.string(),
    "arguments_json": pa.string(),
    "result_json": pa.string(),
    "error_type": pa.string(),
    "error_message": pa.string(),
    "attempt": pa.int64(),
    "duration_ms": pa.float64(),
    "provider": pa.string(),
    "request_model": pa.string(),
    "input_tokens": pa.int64(),
    "output_tokens": pa.int64(),
    "latency_ms": pa.float64(),
    "finish_reason": pa.string(),
    "outcome": pa.string(),
    "intent": pa.string(),
}
_TEXT_FIELDS = ("text", "content", "output_text")

SCHEMA = pa.schema(
    [
        ("topic", pa.string()),
        ("partition", pa.int64()),
        ("offset", pa.int64()),
        ("kafka_timestamp", pa.timestamp("ms", tz="UTC")),
        ("event_id", pa.string()),
        ("conversation_id", pa.string()),
        ("occurred_at", pa.timestamp("us", tz="UTC")),
        ("event_type", pa.string()),
        ("source_service", pa.string()),
        ("source_agent", pa.string()),
        ("source_version", pa.string()),
        ("trace_id", pa.string()),
        ("span_id", pa.string()),
        ("causation_id", pa.string()),
        *PAYLOAD_COLUMNS.items(),
        ("payload_json", pa.string()),
        ("decode_error", pa.string()),
        ("raw_value", pa.binary()),
    ]
)
COLUMN_NAMES = tuple(SCHEMA.names)


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A record as read from Kafka: what the archive needs of it."""

    partition: int
    offset: int
    timestamp_ms: int | None
    value: bytes | None


def day_of(micros: int) -> str:
    """The UTC date of a moment, as the archive's `date=` folders name it."""
    return _day_name(micros // _MICROS_PER_DAY)


@lru_cache(maxsize=4096)
def _day_name(day: int) -> str:
    # Called for every record archived: formatting a date costs more than the rest of
    # the record's columns, and a batch's records fall on a few days.
    return datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%d")


class Rows:
    """Column lists of archive rows, filled record by record, then one Arrow table."""

    def __init__(self) -> None:
        self.columns: dict[str, list[Any]] = {name: [] for name in COLUMN_NAMES}

    def __len__(self) -> int:
        return len(self.columns["offset"])

    def add(self, topic: str, record: RawRecord) -> str:
        """Append one record; returns the date it belongs to (its event time, or the
        Kafka timestamp of a record that cannot be decoded)."""
        c = self.columns
        c["topic"].append(topic)
        c["partition"].append(record.partition)
        c["offset"].append(record.offset)
        c["kafka_timestamp"].append(record.timestamp_ms)
        try:
            decoded = decode(
                record.value, topic=topic, partition=record.partition, offset=record.offset
            )
            event_type = EVENT_TYPE_BY_RECORD_NAME.get(decoded["payload"][0])
            if event_type is None:
                raise DecodeError(f"unknown payload type {decoded['payload'][0]!r}")
        except DecodeError as exc:
            for name in COLUMN_NAMES[4:-2]:
                c[name].append(None)
            c["decode_error"].append(exc.reason)
            c["raw_value"].append(record.value)
            return day_of((record.timestamp_ms or 0) * 1000)
        body: dict[str, Any] = decoded["payload"][1]
        source = decoded["source"]
        occurred = decoded["occurred_at"]
        c["event_id"].append(decoded["event_id"])
        c["conversation_id"].append(decoded["conversation_id"])
        c["occurred_at"].append(occurred)
        c["event_type"].append(event_type)
        c["source_service"].append(source["service"])
        c["source_agent"].append(source.get("agent"))
        c["source_version"].append(source.get("version"))
        c["trace_id"].append(decoded["trace_id"])
        c["span_id"].append(decoded["span_id"])
        c["causation_id"].append(decoded["causation_id"])
        get = body.get
        for name in PAYLOAD_COLUMNS:
            if name == "text":
                c["text"].append(next((get(f) for f in _TEXT_FIELDS if f in body), None))
            else:
                c[name].append(get(name))
        c["payload_json"].append(orjson.dumps(body).decode())
        c["decode_error"].append(None)
        c["raw_value"].append(None)
        return day_of(occurred)

    def table(self, start: int = 0, stop: int | None = None) -> pa.Table:
        """Rows [start, stop) as a table of the archive schema."""
        whole = start == 0 and stop is None
        arrays = [
            pa.array(self.columns[f.name] if whole else self.columns[f.name][start:stop], f.type)
            for f in SCHEMA
        ]
        return pa.Table.from_arrays(arrays, schema=SCHEMA)
