"""A saga's history as the log holds it: its events, read from the conversation's
partition to the partition's end, and the endings of its tool calls."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agentlog.consumers.sagas._state import SAGA_PAYLOADS, SagaEvent
from agentlog.consumers.sagas._steps import ToolEnding
from agentlog.errors import DecodeError
from agentlog.partitioner import partition_for
from agentlog.reader import partition_offset, read_partitions
from agentlog.serde import decode
from agentlog.settings import Settings
from agentlog.topics import partition_count

log = logging.getLogger(__name__)


@dataclass
class SagaHistory:
    """What a conversation's partition holds of a saga: its events in log order, and
    the endings of its tool calls (call ids `SAGA_ID/...`, as `tool_action` names them)."""

    events: list[SagaEvent] = field(default_factory=list)
    tool_endings: dict[str, ToolEnding] = field(default_factory=dict)
    conversation_events: int = 0  # of any type: none means no such conversation on the log


def read_saga_events(
    settings: Settings,
    conversation_id: str,
    saga_id: str | None = None,
    *,
    timeout: float = 30.0,
) -> list[SagaEvent]:
    """The saga events of a conversation (of one saga, given its id), in log order, read
    from the conversation's partition to its end. An event id seen twice (a producer's
    retry) counts once."""
    return read_saga_history(settings, conversation_id, saga_id, timeout=timeout).events


def read_saga_history(
    settings: Settings,
    conversation_id: str,
    saga_id: str | None = None,
    *,
    timeout: float = 30.0,
) -> SagaHistory:
    """`read_saga_events`, and (given a saga id) the endings of the saga's tool calls."""
    topic = settings.events_topic
    partition = partition_for(conversation_id, partition_count(settings, topic))
    key = conversation_id.encode()
    calls = None if saga_id is None else f"{saga_id}/"
    seen: set[str] = set()
    history = SagaHistory()
    for message in read_partitions(settings, topic, partitions=[partition], idle_timeout=timeout):
        if message.key() != key:
            continue
        _, offset = partition_offset(message)
        try:
            record = decode(message.value(), topic=topic, partition=partition, offset=offset)
        except DecodeError as exc:
            # Not an agentlog event (the dead-letter tools show it); a saga event is not.
            log.warning("saga history: skipping %s", exc)
            continue
        name, body = record["payload"]
        if record["event_id"] in seen or record["conversation_id"] != conversation_id:
            continue
        seen.add(record["event_id"])
        history.conversation_events += 1
        if name in _TOOL_ENDINGS:
            call_id = body["tool_call_id"]
            if calls and call_id.startswith(calls) and call_id not in history.tool_endings:
                history.tool_endings[call_id] = _tool_ending(name, body)
            continue
        if name not in SAGA_PAYLOADS or (saga_id is not None and body["saga_id"] != saga_id):
            continue
        event_type = SAGA_PAYLOADS[name].event_type
        history.events.append(
            SagaEvent(event_type, body, record["occurred_at"], record["event_id"], offset)
        )
    return history


_TOOL_ENDINGS = ("agentlog.ToolCallCompleted", "agentlog.ToolCallFailed")


def _tool_ending(name: str, body: Mapping[str, Any]) -> ToolEnding:
    if name == "agentlog.ToolCallCompleted":
        return ToolEnding(body["tool_call_id"], body["tool_name"], True, body["result_json"])
    return ToolEnding(
        body["tool_call_id"],
        body["tool_name"],
        False,
        error_type=body["error_type"],
        error_message=body["error_message"],
        attempt=body["attempt"],
        retryable=body["retryable"],
    )
