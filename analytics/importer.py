"""OpenAI chat JSONL in, events on the log out: history recorded elsewhere, backfilled.

Each line is one conversation (`messages`, optional `tools` and `parallel_tool_calls`,
and optionally a `conversation_id` of its own). The whole file is checked before
anything is produced, so a malformed line imports nothing; the error names the line.
The check builds and encodes every event, so an event too large for a Kafka record is
found then too: kept whole in the claim-check store when that is on (as the recorder
does), else the import is refused naming the line and the limit. The file is read as a
stream twice (checked, then produced), never held whole in memory.
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

import os
import stat
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
from agentlog.claim_check import BlobStore
from agentlog.errors import ConfigurationError, DeliveryFailed, ExportError, UndeliveredEvent
from agentlog.event_ids import derived_event_id
from agentlog.kafka_config import MAX_MESSAGE_BYTES, producer_config
from agentlog.serde import (
    EventEncoder,
    claim_check_payload,
    claim_check_store,
    encode_event,
    event_to_avro,
)
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


# Opening a FIFO must not wait for a writer, nor a terminal become ours.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """The file's non-blank lines with their numbers, read as a stream. Only a regular
    file: it is read twice (checked, then produced), and a pipe or a device (`/dev/zero`
    is one line without end) would hang the check or fill the memory."""
    try:
        descriptor = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise ExportError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise ExportError(
                f"cannot read {path}: not a regular file (a pipe, a device or a folder); "
                "import reads the file twice, checked then produced: save it to a file first"
            )
        source = os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise
    try:
        with source:
            for number, line in enumerate(source, 1):
                if line.strip():
                    yield number, line
    except OSError as exc:
        raise ExportError(f"cannot read {path}: {exc.strerror or exc}") from None


def parse_line(line: bytes, where: str, default_id: str) -> tuple[str, dict[str, Any]]:
    """One line as (conversation id, example), or ExportError saying, after `where`, what
    is wrong with it."""
    try:
        example = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ExportError(f"{where} is not JSON ({exc})") from None
    if not isinstance(example, dict):
        raise ExportError(f"{where} is not a JSON object")
    conversation_id = example.pop("conversation_id", None) or default_id
    if not isinstance(conversation_id, str):
        raise ExportError(f"{where}: conversation_id is not text")
    why = problem(example, "openai", undeclared_ok=True)
    if why is not None:
        raise ExportError(f"{where}: {why}")
    return conversation_id, example


def _examples(path: Path, prefix: str) -> Iterator[tuple[int, str, str, dict[str, Any]]]:
    """(line number, where, conversation id, example) for every line, as a stream."""
    for number, line in _lines(path):
        where = f"{path}: line {number}"
        conversation_id, example = parse_line(line, where, f"{prefix}-{number:06d}")
        yield number, where, conversation_id, example


def _check_new(conversation_id: str, number: int, where: str, seen: dict[str, int]) -> None:
    if conversation_id in seen:
        raise ExportError(
            f"{where}: conversation {conversation_id} is also line {seen[conversation_id]}"
        )
    seen[conversation_id] = number


class _Sizes:
    """How each encoded event goes on the log: as it is, through the claim-check store
    (when on and the event is over its threshold), or not at all (over the record limit
    with the claim check off: the whole import is refused)."""

    def __init__(self, settings: Settings) -> None:
        self.limit = MAX_MESSAGE_BYTES  # what produce() takes (agentlog sets no other)
        self.threshold = settings.claim_check_threshold_bytes if settings.claim_check else None
        self.max_blob = settings.claim_check_max_bytes
        self._settings = settings
        self._blobs: BlobStore | None = None

    def check(self, where: str, key: bytes, event: ev.Event, value: bytes) -> None:
        if self.threshold is not None and len(value) > self.threshold:
            if len(value) > self.max_blob:
                raise ExportError(
                    f"{where}: its {event.payload.event_type} event is {len(value)} bytes, over "
                    f"claim_check_max_bytes ({self.max_blob}); nothing was imported (raise "
                    "AGENTLOG_CLAIM_CHECK_MAX_BYTES, or shorten the line)"
                )
            return
        if len(key) + len(value) > self.limit:
            raise ExportError(
                f"{where}: its {event.payload.event_type} event is {len(key) + len(value)} "
                f"bytes, over the Kafka record limit of {self.limit} bytes (message.max.bytes); "
                "nothing was imported (turn the claim check on, AGENTLOG_CLAIM_CHECK=true, to "
                "keep such events whole, or shorten the line)"
            )

    def on_the_log(self, event: ev.Event, value: bytes) -> bytes:
        """The value to produce: the event, or the claim check standing for it."""
        if self.threshold is None or len(value) <= self.threshold:
            return value
        if self._blobs is None:
            self._blobs = claim_check_store(self._settings)
        try:
            blob = self._blobs.put(value)
        except ConfigurationError as exc:
            raise ExportError(str(exc)) from None
        avro = event_to_avro(event)
        avro["payload"] = claim_check_payload(blob, avro["payload"][0])
        return EventEncoder().encode(avro)


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
            event_id=derived_event_id(_NAMESPACE, f"{conversation_id}/{index}"),
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
    """Check every line of `path` (and the size of every event it makes), then produce
    its conversations to the events topic. `before_producing(conversation ids)` runs
    once the file is checked, before anything is produced (the CLI asks there whether
    the projections hold them already)."""
    started = time.perf_counter()
    prefix = prefix or f"import-{path.stem}"
    start = now or datetime.now(UTC)
    sizes = _Sizes(settings)
    conversations = _check_file(path, prefix, agent, start, sizes)
    if before_producing is not None:
        before_producing(conversations)
    failures: list[UndeliveredEvent] = []

    def delivered(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            failures.append(
                UndeliveredEvent(message.topic() or "", message.key(), message.value(), error.str())
            )

    ensure_topics(settings)
    producer = Producer(producer_config(settings))
    count = 0
    for _, _, conversation_id, example in _examples(path, prefix):
        key = conversation_id.encode()
        for event in conversation_events(
            conversation_id, example, agent=agent, start=start, source=path.name
        ):
            value = sizes.on_the_log(event, encode_event(event))
            _produce(producer, settings.events_topic, key, event, value, delivered)
            count += 1
    remaining = producer.flush(flush_timeout)
    if remaining:
        raise ExportError(
            f"{remaining} events were still unacknowledged after {flush_timeout:.0f}s; the "
            "import repeats the same event ids, so running it again is safe"
        )
    if failures:
        raise DeliveryFailed(failures)
    return Imported(conversations, count, time.perf_counter() - started)


def _check_file(path: Path, prefix: str, agent: str, start: datetime, sizes: _Sizes) -> list[str]:
    """The first pass: every line parsed, its events built and encoded, sizes checked;
    returns the conversation ids (all that is kept of the file)."""
    seen: dict[str, int] = {}
    for number, where, conversation_id, example in _examples(path, prefix):
        _check_new(conversation_id, number, where, seen)
        key = conversation_id.encode()
        for event in conversation_events(
            conversation_id, example, agent=agent, start=start, source=path.name
        ):
            sizes.check(where, key, event, encode_event(event))
    if not seen:
        raise ExportError(f"{path} holds no conversations")
    return list(seen)


def _produce(
    producer: Producer, topic: str, key: bytes, event: ev.Event, value: bytes, on_delivery: Any
) -> None:
    stamp = int(event.occurred_at.timestamp() * 1000)
    while True:
        try:
            producer.produce(topic, value, key, on_delivery=on_delivery, timestamp=stamp)
            return
        except BufferError:
            producer.poll(0.1)  # the local queue is full: let deliveries drain it
