"""OpenAI chat JSONL in, events on the log out: history recorded elsewhere, backfilled.

Each line is one conversation (`messages`, optional `tools` and `parallel_tool_calls`,
and optionally a `conversation_id` of its own). The whole file is checked before
anything is produced, so a malformed line imports nothing; the error names the line.
Event ids derive from the conversation id and the event's place in it, so importing a
file again repeats the same events, which projections and exports apply once.

The events are the inverse of a training export (`trajectory`): a system message is a
`system_prompt`, a user message a `user_message`, an assistant message's content an
`agent_message` and each of its calls a `tool_call_requested`; a tool message completes
its call, or fails it if its content is `{"error": {"type": ..., "message": ...}}`.
`tools` become `tools_declared`. The conversation starts on channel `import` and ends
with outcome `imported`.

Produced through the core (`kafka_config.producer_config`, `serde.encode_event`): this
package builds on the consumers, never on the recorder SDK.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import KafkaError, Message, Producer

from agentlog import events as ev
from agentlog.analytics.validate import problem
from agentlog.errors import DeliveryFailed, ExportError, UndeliveredEvent
from agentlog.kafka_config import producer_config
from agentlog.serde import encode_event
from agentlog.settings import Settings
from agentlog.topics import ensure_topics

_NAMESPACE = uuid.UUID("6f1c7a52-4d0e-4c8e-9a57-0b7f3a1d2e11")


@dataclass(frozen=True)
class Imported:
    conversations: list[str]
    events: int
    seconds: float


def _error_of(content: str) -> tuple[str, str] | None:
    """(type, message) if a tool message's content is an error as exports write it."""
    try:
        value = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    if isinstance(value, dict) and set(value) == {"error"} and isinstance(value["error"], dict):
        error = value["error"]
        if set(error) == {"type", "message"} and all(isinstance(v, str) for v in error.values()):
            return error["type"], error["message"]
    return None


def read_examples(path: Path, prefix: str) -> list[tuple[str, dict[str, Any]]]:
    """Every line as (conversation id, example), or ExportError naming the first bad
    line and what is wrong with it."""
    found: list[tuple[str, dict[str, Any]]] = []
    seen: dict[str, int] = {}
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ExportError(f"cannot read {path}: {exc.strerror}") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}: line {number}"
        try:
            example = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ExportError(f"{where} is not JSON ({exc})") from None
        if not isinstance(example, dict):
            raise ExportError(f"{where} is not a JSON object")
        conversation_id = example.pop("conversation_id", None) or f"{prefix}-{number:06d}"
        if not isinstance(conversation_id, str):
            raise ExportError(f"{where}: conversation_id is not text")
        why = problem(example, "openai", undeclared_ok=True)
        if why is not None:
            raise ExportError(f"{where}: {why}")
        if conversation_id in seen:
            raise ExportError(
                f"{where}: conversation {conversation_id} is also line {seen[conversation_id]}"
            )
        seen[conversation_id] = number
        found.append((conversation_id, example))
    if not found:
        raise ExportError(f"{path} holds no conversations")
    return found


def conversation_events(
    conversation_id: str,
    example: dict[str, Any],
    *,
    agent: str,
    start: datetime,
    source: str,
) -> list[ev.Event]:
    """The events recording one example; times 1 ms apart from `start`."""
    payloads: list[ev.Payload] = [
        ev.ConversationStarted(
            channel="import", metadata_json=orjson.dumps({"source": source}).decode()
        )
    ]
    if example.get("tools"):
        payloads.append(
            ev.ToolsDeclared(
                agent=agent,
                tools=[
                    ev.ToolDeclaration(
                        name=t["function"]["name"],
                        description=t["function"].get("description", ""),
                        parameters_json=orjson.dumps(t["function"].get("parameters", {})).decode(),
                    )
                    for t in example["tools"]
                ],
            )
        )
    names: dict[str, str] = {}
    for message in example["messages"]:
        role = message["role"]
        content = message.get("content")
        if role == "system":
            payloads.append(ev.SystemPrompt(agent=agent, content=content))
        elif role == "user":
            payloads.append(ev.UserMessage(text=content))
        elif role == "assistant":
            if content is not None:
                payloads.append(ev.AgentMessage(agent=agent, text=content))
            for call in message.get("tool_calls") or ():
                names[call["id"]] = call["function"]["name"]
                payloads.append(
                    ev.ToolCallRequested(
                        tool_call_id=call["id"],
                        tool_name=call["function"]["name"],
                        arguments_json=call["function"]["arguments"],
                        agent=agent,
                    )
                )
        else:
            call_id = message["tool_call_id"]
            error = _error_of(content)
            if error is None:
                payloads.append(
                    ev.ToolCallCompleted(
                        tool_call_id=call_id,
                        tool_name=names[call_id],
                        result_json=content,
                        duration_ms=0.0,
                    )
                )
            else:
                payloads.append(
                    ev.ToolCallFailed(
                        tool_call_id=call_id,
                        tool_name=names[call_id],
                        error_type=error[0],
                        error_message=error[1],
                        duration_ms=0.0,
                    )
                )
    payloads.append(ev.ConversationEnded(outcome="imported", reason=f"imported from {source}"))
    return [
        ev.Event(
            event_id=str(uuid.uuid5(_NAMESPACE, f"{conversation_id}/{index}")),
            conversation_id=conversation_id,
            occurred_at=start + timedelta(milliseconds=index),
            source=ev.Source(service="agentlog-import", agent=agent),
            payload=payload,  # type: ignore[arg-type]  # each one a member of the union
        )
        for index, payload in enumerate(payloads)
    ]


def import_file(
    settings: Settings,
    path: Path,
    *,
    prefix: str | None = None,
    agent: str = "assistant",
    now: datetime | None = None,
    flush_timeout: float = 60.0,
    before_producing: Callable[[list[str]], None] | None = None,
) -> Imported:
    """Check every line of `path`, then produce its conversations to the events topic.
    `before_producing(conversation ids)` runs once the file is checked, before anything is
    produced (the CLI asks there whether the projections hold them already)."""
    started = time.perf_counter()
    examples = read_examples(path, prefix or f"import-{path.stem}")
    if before_producing is not None:
        before_producing([c for c, _ in examples])
    start = now or datetime.now(UTC)
    failures: list[UndeliveredEvent] = []

    def delivered(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            failures.append(
                UndeliveredEvent(message.topic() or "", message.key(), message.value(), error.str())
            )

    ensure_topics(settings)
    producer = Producer(producer_config(settings))
    count = 0
    for conversation_id, events in _all_events(examples, agent, start, path.name):
        for event in events:
            _produce(producer, settings.events_topic, conversation_id, event, delivered)
            count += 1
    remaining = producer.flush(flush_timeout)
    if remaining:
        raise ExportError(
            f"{remaining} events were still unacknowledged after {flush_timeout:.0f}s; the "
            "import repeats the same event ids, so running it again is safe"
        )
    if failures:
        raise DeliveryFailed(failures)
    return Imported([c for c, _ in examples], count, time.perf_counter() - started)


def _all_events(
    examples: list[tuple[str, dict[str, Any]]], agent: str, start: datetime, source: str
) -> Iterator[tuple[str, list[ev.Event]]]:
    for conversation_id, example in examples:
        yield (
            conversation_id,
            conversation_events(conversation_id, example, agent=agent, start=start, source=source),
        )


def _produce(
    producer: Producer, topic: str, conversation_id: str, event: ev.Event, on_delivery: Any
) -> None:
    value = encode_event(event)
    stamp = int(event.occurred_at.timestamp() * 1000)
    while True:
        try:
            producer.produce(
                topic, value, conversation_id.encode(), on_delivery=on_delivery, timestamp=stamp
            )
            return
        except BufferError:
            producer.poll(0.1)  # the local queue is full: let deliveries drain it
