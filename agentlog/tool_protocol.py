"""How agents and tool workers talk over Kafka (DESIGN.md, seed pattern 1).

An agent records `tool_call_requested` on the events topic and, once Kafka has
acknowledged it, sends the very same record (same bytes, same event id) to the
tool-requests topic, in the partition of the same number, with a header naming the
events offset it was stored at. A worker that owns tool-requests partition p writes the
call's ending (`tool_call_completed` or `tool_call_failed`) to events partition p, so
the agent reads its results from the partitions its own requests went to, from the
offset of the request on: no ListOffsets, no offset search.

Every event a worker writes carries headers naming the call, so that the agent and a
worker that inherits a partition find a call's ending without decoding other events.
Before each attempt a worker also writes a start marker (headers only) to the request's
partition of the tool-requests topic: a worker that crashes the process mid-call still
uses up an attempt, so a call that kills every worker ends after its attempts.
"""

from __future__ import annotations

import inspect
import json
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from agentlog.errors import ConfigurationError
from agentlog.settings import Settings
from agentlog.topics import partition_count

# On a request: the offset of its tool_call_requested event on the events topic.
REQUESTED_OFFSET = "agentlog.requested-offset"
# On every event a worker writes: the call it belongs to, and which attempt.
TOOL_CALL_ID = "agentlog.tool-call-id"
TOOL_CALL_ATTEMPT = "agentlog.tool-call-attempt"
# Only on a call's ending: "completed" or "failed".
TOOL_CALL_ENDED = "agentlog.tool-call-ended"
# On a worker's start marker: a record without a value on the tool-requests topic that
# a worker writes (and Kafka acknowledges) before each attempt, so that the next owner
# of the partition knows which attempts a worker that died had started.
TOOL_CALL_STARTED = "agentlog.tool-call-started"

# As confluent-kafka types a record's headers.
Headers = dict[str, str | bytes | None] | list[tuple[str, str | bytes | None]]


def header(headers: Headers | None, name: str) -> bytes | None:
    """The value of the first header called `name`, None if absent."""
    pairs = headers.items() if isinstance(headers, dict) else headers or ()
    for key, value in pairs:
        if key == name:
            return value.encode() if isinstance(value, str) else value
    return None


def start_marker(headers: Headers | None) -> str | None:
    """What a worker's start marker says, None for any other record."""
    if header(headers, TOOL_CALL_STARTED) is None:
        return None
    call_id = (header(headers, TOOL_CALL_ID) or b"?").decode()
    attempt = (header(headers, TOOL_CALL_ATTEMPT) or b"?").decode()
    return f"a tool worker's start marker: attempt {attempt} of tool call {call_id} began"


def new_tool_call_id() -> str:
    """A call id in the format the recorders use (`call_` and 24 hex digits)."""
    return f"call_{uuid.uuid4().hex[:24]}"


def bound_arguments(
    function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """A call's arguments as `@recorder.tool` records them (and a re-run compares them):
    by parameter name, defaults filled in; `{"args": [...], "kwargs": {...}}` when they
    do not bind to the function's signature."""
    try:
        bound = inspect.signature(function).bind(*args, **kwargs)
    except TypeError:
        return {"args": list(args), "kwargs": kwargs}
    bound.apply_defaults()
    return dict(bound.arguments)


_FALLBACK_JSON = json.JSONEncoder(default=str, separators=(",", ":"), ensure_ascii=False)


def json_text(value: object) -> str:
    """Compact JSON text of a tool's arguments or result; values JSON cannot hold are
    stored as their str() (as the recorders store them)."""
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        # orjson refuses integers beyond 64 bits; the standard library does not.
        return _FALLBACK_JSON.encode(value)


def tool_partitions(settings: Settings) -> int:
    """The partition count the events and tool-requests topics share; a call's request
    and its events live in partitions of the same number, so the counts must match."""
    events = partition_count(settings, settings.events_topic)
    requests = partition_count(settings, settings.tool_requests_topic)
    if events != requests:
        raise ConfigurationError(
            f"{settings.events_topic} has {events} partitions but "
            f"{settings.tool_requests_topic} has {requests}: tool calls need the same "
            "count on both (recreate the tool-requests topic with "
            f"{events} partitions)"
        )
    return events
