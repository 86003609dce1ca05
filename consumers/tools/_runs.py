"""Running tool calls for a worker: the attempts of each call, and what records them.

Every call ends in exactly one `tool_call_completed` or `tool_call_failed` event, in the
events partition of the request's partition number (where the awaiting agent reads),
carrying the attempt it ended on. Before each attempt a start marker goes to the
request's tool-requests partition and, after the first, a `tool_call_requested` event
of the attempt to the events partition; the attempt runs once Kafka has both, so that
should the tool take the process down, the next worker counts the attempt as used
(`_ledger`) and the log shows it. A call that kills its worker every time thus ends
as `WorkerLost` after its attempts instead of killing every worker in turn.

Calls run on an asyncio loop of their own thread (sync tools on a thread pool); a third
thread serves the producer's delivery reports.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from confluent_kafka import KafkaError, Message, Producer

from agentlog.consumers.tools._registry import (
    ArgumentsError,
    AttemptOutcome,
    ToolRegistry,
    bind_arguments,
    run_attempt,
)
from agentlog.errors import BrokerUnavailable, DecodeError
from agentlog.kafka_config import low_latency_producer_config
from agentlog.serde import EventEncoder, decode
from agentlog.settings import Settings
from agentlog.tool_protocol import (
    TOOL_CALL_ATTEMPT,
    TOOL_CALL_ENDED,
    TOOL_CALL_ID,
    TOOL_CALL_STARTED,
    json_text,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

REQUESTED = "agentlog.ToolCallRequested"
_COMPLETED = "agentlog.ToolCallCompleted"
_FAILED = "agentlog.ToolCallFailed"
Headers = list[tuple[str, str | bytes | None]]
DeliveryReport = Callable[[KafkaError | None, Message], None]


@dataclass(frozen=True)
class ToolRequest:
    """A decoded request on the tool-requests topic."""

    event_id: str
    conversation_id: str
    tool_call_id: str
    tool_name: str
    arguments_json: str
    agent: str | None
    trace_id: str | None
    span_id: str | None

    @classmethod
    def of(cls, message: Message, topic: str, partition: int, offset: int) -> ToolRequest:
        """The request a record holds; DecodeError if it holds none."""
        record = decode(message.value(), topic=topic, partition=partition, offset=offset)
        name, body = record["payload"]
        if name != REQUESTED:
            raise DecodeError(
                f"a {name} event where a tool_call_requested was expected",
                topic=topic,
                partition=partition,
                offset=offset,
            )
        return cls(
            event_id=record["event_id"],
            conversation_id=record["conversation_id"],
            tool_call_id=body["tool_call_id"],
            tool_name=body["tool_name"],
            arguments_json=body["arguments_json"],
            agent=body["agent"],
            trace_id=record["trace_id"],
            span_id=record["span_id"],
        )


@dataclass(frozen=True)
class Work:
    """A request to run: its partition (and which assignment of it), offset and call."""

    partition: int
    generation: int
    offset: int
    request: ToolRequest


@dataclass
class RunCounts:
    completed: int = 0
    failed: int = 0
    retried: int = 0


class _ToolThreads(ThreadPoolExecutor):
    """The threads sync tools run on, counting the calls still running: a sync tool that
    outlives its timeout cannot be stopped, and keeps its thread."""

    def __init__(self, size: int) -> None:
        super().__init__(size, thread_name_prefix="agentlog-tool")
        self.running = 0
        self._count_lock = threading.Lock()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        def counted() -> T:
            with self._count_lock:
                self.running += 1
            try:
                return fn(*args, **kwargs)
            finally:
                with self._count_lock:
                    self.running -= 1

        return super().submit(counted)


def _settle(acknowledged: asyncio.Future[str | None], error: KafkaError | None) -> None:
    if not acknowledged.done():
        acknowledged.set_result(None if error is None else error.str())


class CallRunner:
    """Runs calls handed to `start` (from any thread). For each, `answered(work,
    delivered)` is called once Kafka answered for its ending (from the delivery thread),
    unless `still_owned(work)` was false when it ended: then nothing is recorded (the
    partition's new owner runs the call) and it is answered as delivered."""

    def __init__(
        self,
        settings: Settings,
        registry: ToolRegistry,
        *,
        concurrency: int,
        service: str,
        still_owned: Callable[[Work], bool],
        answered: Callable[[Work, bool], None],
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.service = service
        self.counts = RunCounts()
        # Why Kafka refused something this runner sent, if it did.
        self.failure: str | None = None
        self._still_owned = still_owned
        self._answered = answered
        self._sources: dict[str | None, dict[str, str | None]] = {}
        self._encode = EventEncoder().encode_fields
        config = low_latency_producer_config(settings)
        config["error_cb"] = self._client_error
        self._producer = Producer(config)
        self._executor = _ToolThreads(concurrency)
        self._loop = asyncio.new_event_loop()
        self._closing = False
        self._threads = [
            threading.Thread(target=self._loop.run_forever, name="agentlog-tool-calls"),
            threading.Thread(target=self._serve_deliveries, name="agentlog-tool-deliveries"),
        ]
        for thread in self._threads:
            thread.daemon = True
            thread.start()

    @property
    def tools_still_running(self) -> int:
        """Sync tool calls whose thread runs on though their attempt ended (timed out)."""
        return self._executor.running

    def start(self, work: Work, first_attempt: int) -> None:
        asyncio.run_coroutine_threadsafe(self._call(work, first_attempt), self._loop)

    def close(self) -> None:
        """Stop (the caller has waited for the calls it started) and flush."""
        self._closing = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        for thread in self._threads:
            thread.join()
        self._loop.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._producer.flush(self.settings.delivery_timeout_ms / 1000)

    # -- one call ---------------------------------------------------------------------

    async def _call(self, work: Work, first_attempt: int) -> None:
        try:
            await self._run(work, first_attempt)
        except Exception:  # a bug here must not leave the call in flight forever
            log.exception("tool call %s", work.request.tool_call_id)
            self._answered(work, False)

    async def _run(self, work: Work, first_attempt: int) -> None:
        """Attempts until one succeeds, one fails for good or none are left; then the
        call's one ending."""
        request = work.request
        spec = self.registry.get(request.tool_name)
        if spec is None:
            known = ", ".join(s.name for s in self.registry)
            message = (
                f"no tool named {request.tool_name!r} in this worker group's registry "
                f"(it has {known})"
            )
            outcome = AttemptOutcome(0.0, error_type="UnknownTool", error_message=message)
            await self._end(work, first_attempt, outcome)
            return
        try:
            arguments = orjson.loads(request.arguments_json)
            kwargs = bind_arguments(spec, arguments, request.tool_call_id)
        except (ArgumentsError, orjson.JSONDecodeError) as exc:
            outcome = AttemptOutcome(0.0, error_type="ArgumentsError", error_message=str(exc))
            await self._end(work, first_attempt, outcome)
            return
        if first_attempt > spec.attempts:
            message = (
                f"attempt {first_attempt - 1} of {spec.attempts} was started by a worker that "
                "stopped before it ended; no attempts left"
            )
            outcome = AttemptOutcome(
                0.0, error_type="WorkerLost", error_message=message, transient=True
            )
            await self._end(work, first_attempt - 1, outcome)
            return
        attempt = first_attempt
        while True:
            await self._mark_started(work, attempt)
            outcome = await run_attempt(spec, kwargs, self._executor)
            if outcome.succeeded or not outcome.transient or attempt >= spec.attempts:
                await self._end(work, attempt, outcome)
                return
            log.info(
                "tool call %s attempt %d: %s: %s; retrying",
                request.tool_call_id,
                attempt,
                outcome.error_type,
                outcome.error_message,
            )
            await asyncio.sleep(spec.backoff_before(attempt + 1))
            attempt += 1

    async def _mark_started(self, work: Work, attempt: int) -> None:
        """The start marker (and, after the first attempt, the `tool_call_requested`
        event) of an attempt, acknowledged by Kafka before it runs."""
        marker, marker_delivered = self._acknowledgement()
        headers: Headers = [
            (TOOL_CALL_ID, work.request.tool_call_id.encode()),
            (TOOL_CALL_ATTEMPT, str(attempt).encode()),
            (TOOL_CALL_STARTED, b"1"),
        ]
        await self._send(self.settings.tool_requests_topic, work, None, headers, marker_delivered)
        acknowledgements = [marker]
        if attempt > 1:
            event, event_delivered = self._acknowledgement()
            body = {
                "tool_call_id": work.request.tool_call_id,
                "tool_name": work.request.tool_name,
                "arguments_json": work.request.arguments_json,
                "agent": work.request.agent,
                "attempt": attempt,
            }
            await self._record(work, REQUESTED, body, attempt, None, event_delivered)
            acknowledgements.append(event)
            self.counts.retried += 1
        for acknowledged in acknowledgements:
            error = await acknowledged
            if error is not None:
                self.failure = f"the start of tool call {work.request.tool_call_id}: {error}"
                raise BrokerUnavailable(self.failure)

    async def _end(self, work: Work, attempt: int, outcome: AttemptOutcome) -> None:
        """Record the call's ending; its request is committable once Kafka has it."""
        if not self._still_owned(work):
            self._answered(work, True)
            return
        request = work.request
        if outcome.succeeded:
            name, body = (
                _COMPLETED,
                {
                    "tool_call_id": request.tool_call_id,
                    "tool_name": request.tool_name,
                    "result_json": json_text(outcome.result),
                    "duration_ms": outcome.duration_ms,
                    "attempt": attempt,
                },
            )
        else:
            name, body = (
                _FAILED,
                {
                    "tool_call_id": request.tool_call_id,
                    "tool_name": request.tool_name,
                    "error_type": outcome.error_type,
                    "error_message": outcome.error_message,
                    "duration_ms": outcome.duration_ms,
                    "attempt": attempt,
                    "retryable": outcome.transient,
                },
            )

        def delivered(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                self.failure = f"the ending of tool call {request.tool_call_id}: {error.str()}"
            elif outcome.succeeded:
                self.counts.completed += 1
            else:
                self.counts.failed += 1
            self._answered(work, error is None)

        ended = b"completed" if outcome.succeeded else b"failed"
        await self._record(work, name, body, attempt, ended, delivered)

    # -- producing ----------------------------------------------------------------------

    async def _record(
        self,
        work: Work,
        name: str,
        body: dict[str, Any],
        attempt: int,
        ended: bytes | None,
        on_delivery: DeliveryReport,
    ) -> None:
        """An event of the call, answering its request, in the events partition of the
        request's number, with headers naming the call."""
        request = work.request
        micros = time.time_ns() // 1000
        value = self._encode(
            str(uuid.uuid4()),
            request.conversation_id,
            micros,
            self._sources.get(request.agent) or self._source(request.agent),
            request.trace_id,
            request.span_id,
            request.event_id,
            (name, body),
        )
        headers: Headers = [
            (TOOL_CALL_ID, request.tool_call_id.encode()),
            (TOOL_CALL_ATTEMPT, str(attempt).encode()),
        ]
        if ended is not None:
            headers.append((TOOL_CALL_ENDED, ended))
        await self._send(
            self.settings.events_topic, work, value, headers, on_delivery, micros // 1000
        )

    def _source(self, agent: str | None) -> dict[str, str | None]:
        # Never changed once made: the encoder memoizes each one's bytes by identity.
        source = {"service": self.service, "agent": agent, "version": None}
        self._sources[agent] = source
        return source

    async def _send(
        self,
        topic: str,
        work: Work,
        value: bytes | None,
        headers: Headers,
        on_delivery: DeliveryReport,
        timestamp: int = 0,
    ) -> None:
        """Produce to the partition of the request's number, waiting (without blocking
        the loop) while the producer's queue is full."""
        while True:
            try:
                self._producer.produce(
                    topic,
                    value,
                    work.request.conversation_id.encode(),
                    partition=work.partition,
                    timestamp=timestamp,
                    headers=headers,
                    on_delivery=on_delivery,
                )
                return
            except BufferError:
                await asyncio.sleep(0.01)

    def _acknowledgement(self) -> tuple[asyncio.Future[str | None], DeliveryReport]:
        """A future of the loop that a delivery report settles: None, or the error."""
        acknowledged: asyncio.Future[str | None] = self._loop.create_future()

        def delivered(error: KafkaError | None, message: Message) -> None:
            self._loop.call_soon_threadsafe(_settle, acknowledged, error)

        return acknowledged, delivered

    def _serve_deliveries(self) -> None:
        while not self._closing:
            self._producer.poll(0.1)

    def _client_error(self, error: KafkaError) -> None:
        if error.fatal():
            self.failure = f"the tool worker's producer: {error.str()}"
