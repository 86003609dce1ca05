"""Ask tool workers for a tool call and await its result (`agentlog tools work` runs them).

    with ToolClient(settings, service="support-bot") as tools:
        call = tools.request("conv-42", "lookup_invoice", {"invoice_id": "INV-1"})
        ...                                   # the agent carries on
        invoice = call.result(timeout=30)     # or, in asyncio code: await call

A request is recorded as `tool_call_requested` on the events topic; once Kafka has
acknowledged that event, the same record goes to the tool-requests topic, in the
partition of the same number, for the worker pool. The ending a worker records
(`tool_call_completed` or `tool_call_failed`, in that same events partition) resolves
the call: one reader in this process follows the events partitions its requests went
to, from the offset of its first request there (the producer's acknowledgement names
it: no ListOffsets, which Tansu answers wrongly), and matches endings by call id.
Awaiting a call holds no thread: two threads per client serve every call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import threading
import time
from collections import deque
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from agentlog.connection import resolved
from agentlog.errors import (
    AgentlogError,
    BrokerUnavailable,
    ConfigurationError,
    DeliveryFailed,
    ToolError,
    ToolTimeout,
    UndeliveredEvent,
)
from agentlog.event_ids import new_event_id
from agentlog.kafka_config import low_latency_producer_config, low_latency_reader_config
from agentlog.reader import out_of_order, partition_offset
from agentlog.serde import EventEncoder, decode
from agentlog.settings import Settings
from agentlog.tool_protocol import (
    REQUESTED_OFFSET,
    TOOL_CALL_ENDED,
    TOOL_CALL_ID,
    header,
    json_text,
    new_tool_call_id,
    tool_partitions,
)
from agentlog.topics import ensure_topics

log = logging.getLogger(__name__)

_REQUESTED = "agentlog.ToolCallRequested"
_COMPLETED = "agentlog.ToolCallCompleted"
# How long the background threads wait for Kafka before looking at `closing` again.
_IDLE_WAIT = 0.1
# ...and the results thread, which also starts reading partitions between polls: a
# result cannot arrive before its partition is read, so this bounds how much the first
# call of a partition waits for that.
_RESULTS_WAIT = 0.01


class PendingToolCall:
    """A requested tool call: `result(timeout)` blocks for it, `await call` (or
    `await call.wait(timeout)`) suspends the task without holding a thread.

    Both return the tool's result (decoded from JSON) and raise ToolError if the call
    ended in `tool_call_failed`, ToolTimeout if no ending arrived in time (the call goes
    on; ask again later), DeliveryFailed if Kafka refused the request itself."""

    def __init__(
        self,
        conversation_id: str,
        tool_call_id: str,
        tool_name: str,
        requested_event_id: str,
        default_timeout: float,
    ) -> None:
        self.conversation_id = conversation_id
        self.tool_call_id = tool_call_id
        self.tool_name = tool_name
        self.requested_event_id = requested_event_id
        self._default_timeout = default_timeout
        self._future: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def __repr__(self) -> str:
        state = "done" if self.done() else "pending"
        return f"<PendingToolCall {self.tool_call_id} {self.tool_name} {state}>"

    def done(self) -> bool:
        return self._future.done()

    def result(self, timeout: float | None = None) -> Any:
        """Block until the call ended (at most `timeout` seconds, default the client's)."""
        limit = self._default_timeout if timeout is None else timeout
        try:
            return self._future.result(limit)
        except concurrent.futures.TimeoutError:
            raise self._timed_out(limit) from None

    async def wait(self, timeout: float | None = None) -> Any:
        """Await the call's ending (at most `timeout` seconds, default the client's)."""
        limit = self._default_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()

        def hand_over(done: concurrent.futures.Future[Any]) -> None:
            # Runs in whichever thread ended the call; the loop takes it from there.
            try:
                loop.call_soon_threadsafe(_settle, waiter, done)
            except RuntimeError:
                pass  # the loop is closed: nobody awaits any more

        self._future.add_done_callback(hand_over)
        try:
            return await asyncio.wait_for(waiter, limit)
        except TimeoutError:
            raise self._timed_out(limit) from None

    def __await__(self) -> Any:
        return self.wait().__await__()

    def _timed_out(self, limit: float) -> ToolTimeout:
        return ToolTimeout(
            f"tool call {self.tool_call_id} ({self.tool_name}) in conversation "
            f"{self.conversation_id} had no result within {limit:g}s; is a tool worker "
            "running (`agentlog tools work MODULE:REGISTRY`)? The call stays pending: "
            "await it again to go on waiting"
        )


def _settle(waiter: asyncio.Future[Any], done: concurrent.futures.Future[Any]) -> None:
    if waiter.done():  # the await timed out (cancelled) before the ending came
        return
    error = done.exception()
    if error is not None:
        waiter.set_exception(error)
    else:
        waiter.set_result(done.result())


class ToolClient:
    """Requests tool calls from the worker pool and hands their results back.

    `service`/`version` name the writer of the requested events; `timeout` is how long
    `result()` and `await` wait by default. Close it (or use it as a context manager,
    sync or async) to flush requests still on their way; calls without an ending by
    then raise ToolTimeout."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        service: str = "agent",
        version: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        if timeout <= 0:
            raise ConfigurationError(f"timeout must be positive seconds, got {timeout!r}")
        self.settings = resolved(settings or Settings())
        self.events_topic = self.settings.events_topic
        self.requests_topic = self.settings.tool_requests_topic
        self.partitions = tool_partitions(self.settings)
        self.default_timeout = timeout
        self._service = service
        self._version = version
        # Never changed once made: the encoder memoizes each one's bytes by identity.
        self._sources: dict[str | None, dict[str, str | None]] = {}
        self._encode = EventEncoder().encode_fields
        self._pending: dict[str, PendingToolCall] = {}
        self._followed: set[int] = set()
        # The next offset expected of each followed partition (results thread only).
        self._next_offsets: dict[int, int] = {}
        self._to_follow: deque[TopicPartition] = deque()
        self._fatal: str | None = None
        # Requests the producer's full queue refused inside a delivery callback, where
        # waiting is not allowed; the delivery thread sends them.
        self._refused: deque[tuple[PendingToolCall, bytes, bytes, int, int, int]] = deque()
        self._closing = False
        ensure_topics(self.settings, answer_within=1.0)
        config = low_latency_producer_config(self.settings)
        config["error_cb"] = self._client_error
        self._producer = Producer(config)
        self._reader = Consumer(low_latency_reader_config(self.settings))
        self._deliveries = threading.Thread(
            target=self._serve_deliveries, name="agentlog-tool-deliveries", daemon=True
        )
        self._results = threading.Thread(
            target=self._serve_results, name="agentlog-tool-results", daemon=True
        )
        self._deliveries.start()
        self._results.start()

    # -- requesting -------------------------------------------------------------------

    def request(
        self,
        conversation_id: str,
        tool_name: str,
        arguments: Any = None,
        *,
        agent: str | None = None,
        tool_call_id: str | None = None,
        causation_id: str | None = None,
        trace_id: str | None = None,
        span_id: str | None = None,
    ) -> PendingToolCall:
        """Ask for a tool call and return at once; `arguments` (a dict of the tool's
        keyword arguments) are stored as JSON text. The call's id is `tool_call_id`, or
        a new one; a worker passes it to the tool as its idempotency key."""
        if self._closing:
            raise ConfigurationError("this ToolClient is closed; create a new one")
        if self._fatal is not None:
            raise BrokerUnavailable(
                f"the tool-call producer hit a fatal error: {self._fatal}; create a new client"
            )
        if conversation_id.__class__ is not str or not conversation_id:
            raise ConfigurationError(
                f"conversation_id must be a non-empty string, got {conversation_id!r}"
            )
        if tool_name.__class__ is not str or not tool_name:
            raise ConfigurationError(f"tool_name must be a non-empty string, got {tool_name!r}")
        call_id = tool_call_id or new_tool_call_id()
        if call_id in self._pending:
            raise ConfigurationError(f"tool call {call_id} is already pending in this client")
        event_id = new_event_id()
        micros = time.time_ns() // 1000
        body = {
            "tool_call_id": call_id,
            "tool_name": tool_name,
            "arguments_json": json_text({} if arguments is None else arguments),
            "agent": agent,
            "attempt": 1,
        }
        value = self._encode(
            event_id,
            conversation_id,
            micros,
            self._sources.get(agent) or self._source(agent),
            trace_id,
            span_id,
            causation_id,
            (_REQUESTED, body),
        )
        key = conversation_id.encode()
        call = PendingToolCall(conversation_id, call_id, tool_name, event_id, self.default_timeout)
        self._pending[call_id] = call
        delivered = functools.partial(self._requested_event_delivered, call, value, key)
        timestamp = micros // 1000
        deadline = time.monotonic() + self.settings.delivery_timeout_ms / 1000
        while True:
            try:
                self._producer.produce(
                    self.events_topic, value, key, timestamp=timestamp, on_delivery=delivered
                )
                return call
            except BufferError:
                if time.monotonic() > deadline:
                    self._pending.pop(call_id, None)
                    raise BrokerUnavailable(
                        f"the producer's queue stayed full for "
                        f"{self.settings.delivery_timeout_ms / 1000:g}s: is Kafka at "
                        f"{self.settings.bootstrap_servers} taking records?"
                    ) from None
                time.sleep(0.005)  # the delivery thread makes room

    def _source(self, agent: str | None) -> dict[str, str | None]:
        source = {"service": self._service, "agent": agent, "version": self._version}
        self._sources[agent] = source
        return source

    # -- the delivery thread ----------------------------------------------------------

    def _serve_deliveries(self) -> None:
        while not self._closing:
            self._producer.poll(_IDLE_WAIT)
            self._send_refused()

    def _requested_event_delivered(
        self,
        call: PendingToolCall,
        value: bytes,
        key: bytes,
        error: KafkaError | None,
        message: Message,
    ) -> None:
        """The requested event is on the events topic: follow its partition from its
        offset (the ending comes later there), then hand the request to the workers."""
        if error is not None:
            self._fail(call, self.events_topic, key, value, error.str())
            return
        partition, offset = partition_offset(message)
        self._follow(partition, offset)
        timestamp = message.timestamp()[1]
        item = (call, value, key, partition, offset, timestamp)
        if self._refused or not self._send_request(*item):
            self._refused.append(item)

    def _send_request(
        self,
        call: PendingToolCall,
        value: bytes,
        key: bytes,
        partition: int,
        offset: int,
        timestamp: int,
    ) -> bool:
        try:
            self._producer.produce(
                self.requests_topic,
                value,
                key,
                partition=partition,
                timestamp=timestamp,
                headers=[(REQUESTED_OFFSET, str(offset).encode())],
                on_delivery=functools.partial(self._request_delivered, call, value, key),
            )
        except BufferError:
            return False
        return True

    def _send_refused(self) -> None:
        while self._refused:
            if not self._send_request(*self._refused[0]):
                return
            self._refused.popleft()

    def _request_delivered(
        self,
        call: PendingToolCall,
        value: bytes,
        key: bytes,
        error: KafkaError | None,
        message: Message,
    ) -> None:
        if error is not None:
            self._fail(call, self.requests_topic, key, value, error.str())

    def _fail(self, call: PendingToolCall, topic: str, key: bytes, value: bytes, why: str) -> None:
        if self._pending.pop(call.tool_call_id, None) is not None:
            call._future.set_exception(DeliveryFailed([UndeliveredEvent(topic, key, value, why)]))

    def _follow(self, partition: int, offset: int) -> None:
        """Have the results thread read `partition` of the events topic from `offset` on,
        unless it already does: the first request acknowledged in a partition has its
        lowest offset there. (Only the thread that polls the reader may assign it: an
        assignment from another thread waits until that poll returns.)"""
        if partition in self._followed:
            return
        self._followed.add(partition)
        self._to_follow.append(TopicPartition(self.events_topic, partition, offset))

    def _client_error(self, error: KafkaError) -> None:
        if error.fatal():
            self._fatal = error.str()

    # -- the results thread -----------------------------------------------------------

    def _serve_results(self) -> None:
        while not self._closing:
            if self._to_follow:
                start = []
                while self._to_follow:
                    start.append(self._to_follow.popleft())
                for tp in start:
                    self._next_offsets[tp.partition] = tp.offset
                self._reader.incremental_assign(start)
            first = self._reader.poll(_RESULTS_WAIT)
            if first is None:
                continue
            for message in [first, *self._reader.consume(1000, 0)]:
                try:
                    self._take(message)
                except AgentlogError as exc:
                    log.error("tool results: %s", exc)

    def _take(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("reading tool results: %s", error.str())
            return
        partition, offset = partition_offset(message)
        differs = out_of_order(
            self.settings, self.events_topic, partition, offset, self._next_offsets.get(partition)
        )
        if differs is not None:
            if differs.below:
                return  # handed again: read already
            # Offsets Kafka did not hand over, read again: an ending may be there.
            for missing in differs.missing:
                self._take_ending(missing)
        self._next_offsets[partition] = offset + 1
        self._take_ending(message)

    def _take_ending(self, message: Message) -> None:
        headers = message.headers()
        if not headers or header(headers, TOOL_CALL_ENDED) is None:
            return
        call_id = (header(headers, TOOL_CALL_ID) or b"").decode()
        call = self._pending.pop(call_id, None)
        if call is None:
            return  # another process's call, or one already ended
        partition, offset = partition_offset(message)
        name, body = decode(
            message.value(), topic=message.topic(), partition=partition, offset=offset
        )["payload"]
        if name == _COMPLETED:
            call._future.set_result(orjson.loads(body["result_json"]))
        else:
            call._future.set_exception(
                ToolError(
                    tool_call_id=call_id,
                    tool_name=body["tool_name"],
                    error_type=body["error_type"],
                    error_message=body["error_message"],
                    attempt=body["attempt"],
                    retryable=body["retryable"],
                )
            )

    # -- closing ----------------------------------------------------------------------

    def close(self, timeout: float | None = None) -> None:
        """Send every request still queued (at most `timeout` seconds), then stop; calls
        without an ending by then raise ToolTimeout."""
        if self._closing:
            return
        self._closing = True
        self._deliveries.join()
        self._results.join()
        wait = timeout if timeout is not None else self.settings.delivery_timeout_ms / 1000 + 5
        deadline = time.monotonic() + wait
        remaining = self._producer.flush(wait)
        while self._refused and time.monotonic() < deadline:
            self._send_refused()
            remaining = self._producer.flush(max(0.0, deadline - time.monotonic()))
        self._reader.close()
        for call in list(self._pending.values()):
            call._future.set_exception(
                ToolTimeout(
                    f"the ToolClient was closed before tool call {call.tool_call_id} "
                    f"({call.tool_name}) ended; its ending is still recorded on "
                    f"{self.events_topic}"
                )
            )
        self._pending.clear()
        if remaining or self._refused:
            raise BrokerUnavailable(
                f"{remaining + len(self._refused)} tool request(s) still waiting for Kafka at "
                f"{self.settings.bootstrap_servers} after {wait:.0f}s"
            )

    async def aclose(self, timeout: float | None = None) -> None:
        await asyncio.to_thread(self.close, timeout)

    def __enter__(self) -> ToolClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> ToolClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
