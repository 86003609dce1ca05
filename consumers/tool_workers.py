"""The tool worker: a consumer-group member on the tool-requests topic that runs each
requested call and records how it ended on the events topic.

Each call ends in exactly one `tool_call_completed` or `tool_call_failed` event, written
to the events partition of the request's partition number (where the awaiting agent
reads), carrying the attempt it ended on. Attempts after the first are recorded as
`tool_call_requested` events of the same call id and their attempt number. Before each
attempt the worker writes a start marker to the tool-requests partition and waits for
Kafka to take it, so the attempts a crashed worker began are counted by the next one: a
call that takes its worker down each time ends after its attempts (`WorkerLost`)
instead of killing every worker in turn. A request's offset is committed only after
Kafka acknowledged its ending; a worker given a partition first reads which calls ended
already (`tool_ledger`), so a worker killed between the two causes neither a second run
nor a second ending.

Three threads: the consumer loop (this one), an asyncio loop running the calls (sync
tools on a thread pool), and the producer's delivery reports. The number of calls in
flight is bounded by `concurrency`, and at most as many requests again are taken from
Kafka ahead of time.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from agentlog.consumers.dead_letters import DeadLetters
from agentlog.consumers.tool_ledger import CallLedger, read_ledgers
from agentlog.consumers.tool_registry import (
    ArgumentsError,
    AttemptOutcome,
    ToolRegistry,
    bind_arguments,
    run_attempt,
)
from agentlog.errors import BrokerUnavailable, ConfigurationError, DecodeError
from agentlog.kafka_config import (
    low_latency_group_consumer_config,
    low_latency_producer_config,
)
from agentlog.reader import partition_offset
from agentlog.serde import EventEncoder, decode
from agentlog.settings import Settings
from agentlog.tool_protocol import (
    TOOL_CALL_ATTEMPT,
    TOOL_CALL_ENDED,
    TOOL_CALL_ID,
    TOOL_CALL_STARTED,
    header,
    json_text,
    tool_partitions,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_TOOL_GROUP = "agentlog-tools"
_REQUESTED = "agentlog.ToolCallRequested"
_COMPLETED = "agentlog.ToolCallCompleted"
_FAILED = "agentlog.ToolCallFailed"
# How long the consumer loop blocks before it looks at stop requests and commits.
_IDLE_WAIT = 0.05
# While every slot is taken and as many requests wait, how often the loop polls Kafka
# anyway (each poll may take one more request).
_POLL_WHILE_FULL = 1.0


@dataclass
class WorkerProgress:
    completed: int = 0
    failed: int = 0
    retried: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    in_flight: int = 0

    def line(self) -> str:
        return (
            f"completed {self.completed:,}, failed {self.failed:,}, retries {self.retried:,}, "
            f"already ended {self.skipped:,}, dead-lettered {self.dead_lettered:,}, "
            f"in flight {self.in_flight:,}"
        )


ProgressCallback = Callable[[WorkerProgress], None]


@dataclass(frozen=True)
class _Request:
    """A decoded tool request."""

    event_id: str
    conversation_id: str
    tool_call_id: str
    tool_name: str
    arguments_json: str
    agent: str | None
    trace_id: str | None
    span_id: str | None


@dataclass
class _Partition:
    """One assigned tool-requests partition: the calls in flight and what may be
    committed (every offset below the lowest call not yet acknowledged)."""

    number: int
    ledger: CallLedger | None
    in_flight: set[int] = field(default_factory=set)
    # Offsets taken from Kafka, waiting for a free slot.
    waiting: set[int] = field(default_factory=set)
    # Offsets whose ending Kafka refused: never committed past.
    undelivered: set[int] = field(default_factory=set)
    next_offset: int | None = None
    committed: int | None = None
    at_end: bool = False

    def committable(self) -> int | None:
        blocked = self.in_flight | self.waiting | self.undelivered
        return min(blocked) if blocked else self.next_offset


@dataclass(frozen=True)
class _Work:
    """A request being run: where it came from and what it asks."""

    part: _Partition
    offset: int
    request: _Request


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


class ToolWorker:
    """Runs the registry's tools for requests of the group's partitions it is given."""

    def __init__(
        self,
        settings: Settings,
        registry: ToolRegistry,
        *,
        group: str = DEFAULT_TOOL_GROUP,
        concurrency: int = 8,
        service: str = "agentlog-tools",
        on_progress: ProgressCallback | None = None,
    ) -> None:
        if concurrency < 1:
            raise ConfigurationError(f"concurrency must be at least 1, got {concurrency}")
        self.settings = settings
        self.registry = registry
        self.group = group
        self.concurrency = concurrency
        self.service = service
        self.on_progress = on_progress
        self.progress = WorkerProgress()
        self.topic = settings.tool_requests_topic
        self.events_topic = settings.events_topic
        tool_partitions(settings)  # refuses topics whose partition counts differ
        self._parts: dict[int, _Partition] = {}
        self._stop = False
        # Requests taken from Kafka that wait for one of the `concurrency` slots.
        self._waiting: deque[tuple[_Work, int]] = deque()
        self._last_poll = 0.0
        self._assigned_once = False
        self._in_flight = 0
        # Calls whose ending Kafka answered for (and whether it took it); the delivery
        # thread appends, the consumer loop applies.
        self._answered: deque[tuple[_Work, bool]] = deque()
        self._wake = threading.Condition()
        self._failure: str | None = None
        self._last_commit = 0.0
        self._sources: dict[str | None, dict[str, str | None]] = {}
        self._encode = EventEncoder().encode_fields
        self._dead_letters = DeadLetters(settings, group)
        producer_settings = low_latency_producer_config(settings)
        producer_settings["error_cb"] = self._client_error
        self._producer = Producer(producer_settings)
        self.consumer = Consumer(low_latency_group_consumer_config(settings, group))
        self._executor = _ToolThreads(concurrency)
        self._loop = asyncio.new_event_loop()
        self._threads = [
            threading.Thread(target=self._loop.run_forever, name="agentlog-tool-calls"),
            threading.Thread(target=self._serve_deliveries, name="agentlog-tool-deliveries"),
        ]
        self._threads_stop = False
        for thread in self._threads:
            thread.daemon = True
            thread.start()

    @property
    def tools_still_running(self) -> int:
        """Sync tool calls whose thread still runs though their attempt ended (timed out)."""
        return self._executor.running

    def stop(self) -> None:
        """Take no more requests; finish the calls in flight (safe from a signal handler)."""
        self._stop = True

    # -- the consumer loop ------------------------------------------------------------

    def run(self, *, once: bool = False, assignment_timeout: float = 60.0) -> WorkerProgress:
        """Run calls until stopped; with `once`, until every assigned partition is read
        to its end and its calls have ended."""
        self.consumer.subscribe(
            [self.topic], on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._lost
        )
        started = last_report = time.monotonic()
        try:
            while not self._stop:
                self._apply_answers()
                self._raise_failure()
                self._start_waiting()
                self._commit_due()
                now = time.monotonic()
                if self.on_progress is not None and now - last_report >= 1.0:
                    last_report = now
                    self.on_progress(self._snapshot())
                if once and self._caught_up():
                    break
                if not self._assigned_once and now - started > assignment_timeout:
                    raise BrokerUnavailable(
                        f"no partition of {self.topic} was assigned to group {self.group} "
                        f"within {assignment_timeout:.0f}s; is Kafka at "
                        f"{self.settings.bootstrap_servers} answering?"
                    )
                for message in self._poll():
                    self._take(message)
        finally:
            self._shut_down()
        return self._snapshot()

    def _poll(self) -> list[Message]:
        """The next requests. While enough wait to be started, wait for calls to end
        instead; poll now and then all the same, so that the group sees this worker alive
        and rebalances are served. (Pausing the partitions would be the textbook way, but
        librdkafka fetches a resumed partition only about a second later.)"""
        room = 2 * self.concurrency - len(self._waiting)
        if room <= 0:
            if time.monotonic() - self._last_poll < _POLL_WHILE_FULL:
                with self._wake:
                    if not self._answered:
                        self._wake.wait(_IDLE_WAIT)
                return []
            room = 1
        self._last_poll = time.monotonic()
        first = self.consumer.poll(_IDLE_WAIT)
        if first is None:
            return []
        return [first, *self.consumer.consume(room - 1, 0)] if room > 1 else [first]

    def _start_waiting(self) -> None:
        while self._waiting and self._in_flight < self.concurrency:
            work, first_attempt = self._waiting.popleft()
            if self._parts.get(work.part.number) is not work.part:
                continue  # revoked before it started: the next owner runs it
            work.part.waiting.discard(work.offset)
            work.part.in_flight.add(work.offset)
            self._in_flight += 1
            asyncio.run_coroutine_threadsafe(self._call(work, first_attempt), self._loop)

    def _snapshot(self) -> WorkerProgress:
        self.progress.in_flight = self._in_flight
        return WorkerProgress(**vars(self.progress))

    def _caught_up(self) -> bool:
        return (
            self._assigned_once
            and self._in_flight == 0
            and not self._waiting
            and not self._answered
            and all(p.at_end and self._committed_all(p) for p in self._parts.values())
        )

    @staticmethod
    def _committed_all(part: _Partition) -> bool:
        position = part.committable()
        return position is None or position == part.committed

    def _take(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                part = self._parts.get(partition_offset(message)[0])
                if part is not None:
                    part.at_end = True
            elif error.fatal():
                raise BrokerUnavailable(f"tool worker consumer failed: {error.str()}")
            else:
                log.warning("tool worker consumer: %s", error.str())
            return
        partition, offset = partition_offset(message)
        part = self._parts.get(partition)
        if part is None:
            return  # revoked while the record was on its way
        part.at_end = False
        part.next_offset = offset + 1
        if header(message.headers(), TOOL_CALL_STARTED) is not None:
            return  # a worker's start marker, for the ledger
        request = self._decoded(message)
        if request is None:
            return
        first_attempt = 1
        if part.ledger is not None:
            if part.ledger.needs_check(offset):
                if request.tool_call_id in part.ledger.ended:
                    self.progress.skipped += 1
                    log.info("tool call %s ended before; not run again", request.tool_call_id)
                    return
                first_attempt = part.ledger.attempts.get(request.tool_call_id, 0) + 1
            else:
                part.ledger = None  # past what an earlier owner could have run
        part.waiting.add(offset)
        self._waiting.append((_Work(part, offset, request), first_attempt))
        self._start_waiting()

    def _decoded(self, message: Message) -> _Request | None:
        """The request, or None once it is dead-lettered (it cannot name a call to end)."""
        partition, offset = partition_offset(message)
        try:
            record = decode(message.value(), topic=self.topic, partition=partition, offset=offset)
            name, body = record["payload"]
            if name != _REQUESTED:
                raise DecodeError(
                    f"a {name} event where a tool_call_requested was expected",
                    topic=self.topic,
                    partition=partition,
                    offset=offset,
                )
        except DecodeError as exc:
            log.error("dead-lettering %s", exc)
            self._dead_letters.send(message, str(exc), attempts=1)
            self._dead_letters.flush()  # acknowledged before the offset is committed
            self.progress.dead_lettered += 1
            return None
        return _Request(
            event_id=record["event_id"],
            conversation_id=record["conversation_id"],
            tool_call_id=body["tool_call_id"],
            tool_name=body["tool_name"],
            arguments_json=body["arguments_json"],
            agent=body["agent"],
            trace_id=record["trace_id"],
            span_id=record["span_id"],
        )

    # -- rebalances -------------------------------------------------------------------

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned_once = True
        if not partitions:  # more workers than partitions: this one waits as a spare
            consumer.assign(partitions)
            return
        try:
            committed = consumer.committed(partitions, timeout=30)
        except KafkaException as exc:
            raise BrokerUnavailable(
                f"cannot read the committed offsets of group {self.group}: {exc.args[0].str()}"
            ) from None
        starts = {
            tp.partition: tp.offset if tp.offset >= 0 else OFFSET_BEGINNING for tp in committed
        }
        ledgers = read_ledgers(self.settings, starts)
        for tp in partitions:
            tp.offset = starts[tp.partition]
            self._parts[tp.partition] = _Partition(tp.partition, ledgers[tp.partition])
            self._parts[tp.partition].committed = max(0, starts[tp.partition])
        consumer.assign(partitions)
        log.info("assigned %s", {p: o for p, o in starts.items()})

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Finish the calls in flight of the partitions going away and commit them, so
        that their next owner starts where this worker ended."""
        numbers = {tp.partition for tp in partitions}
        while any(self._parts[n].in_flight for n in numbers if n in self._parts):
            self._apply_answers(wait=True)
        self._commit(numbers, asynchronous=False)
        for number in numbers:
            self._parts.pop(number, None)
        consumer.unassign()

    def _lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """The group moved the partitions on without this worker (it was too slow to
        answer): their calls in flight end unrecorded, left to the new owner."""
        for tp in partitions:
            self._parts.pop(tp.partition, None)
        log.warning("partitions %s were lost to the group", [tp.partition for tp in partitions])
        consumer.unassign()

    # -- commits ----------------------------------------------------------------------

    def _apply_answers(self, wait: bool = False) -> None:
        """Take the endings Kafka answered for (waiting briefly for one if `wait`)."""
        if wait:
            with self._wake:
                if not self._answered:
                    self._wake.wait(_IDLE_WAIT)
        while self._answered:
            work, delivered = self._answered.popleft()
            work.part.in_flight.discard(work.offset)
            if not delivered:
                work.part.undelivered.add(work.offset)
            self._in_flight -= 1

    def _commit_due(self) -> None:
        now = time.monotonic()
        if now - self._last_commit >= self.settings.tool_commit_interval_ms / 1000:
            self._last_commit = now
            self._commit(set(self._parts), asynchronous=True)

    def _commit(self, numbers: set[int], *, asynchronous: bool) -> None:
        offsets = []
        for number in numbers:
            part = self._parts.get(number)
            if part is None:
                continue
            position = part.committable()
            if position is not None and position != part.committed:
                offsets.append(TopicPartition(self.topic, number, position))
                part.committed = position
        if not offsets:
            return
        try:
            if asynchronous:
                self.consumer.commit(offsets=offsets, asynchronous=True)
            else:
                self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # The requests are handed out again and found ended in the log: no harm.
            log.warning("commit of %s failed: %s", offsets, exc.args[0].str())

    # -- calls (on the asyncio loop) --------------------------------------------------

    async def _call(self, work: _Work, first_attempt: int) -> None:
        try:
            await self._run(work, first_attempt)
        except Exception:  # a bug here must not leave the call in flight forever
            log.exception("tool call %s", work.request.tool_call_id)
            self._answer(work, delivered=False)

    async def _run(self, work: _Work, first_attempt: int) -> None:
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

    @staticmethod
    def _retry_body(request: _Request, attempt: int) -> dict[str, Any]:
        return {
            "tool_call_id": request.tool_call_id,
            "tool_name": request.tool_name,
            "arguments_json": request.arguments_json,
            "agent": request.agent,
            "attempt": attempt,
        }

    @staticmethod
    def _ending(
        request: _Request, attempt: int, outcome: AttemptOutcome
    ) -> tuple[str, dict[str, Any]]:
        if outcome.succeeded:
            return _COMPLETED, {
                "tool_call_id": request.tool_call_id,
                "tool_name": request.tool_name,
                "result_json": json_text(outcome.result),
                "duration_ms": outcome.duration_ms,
                "attempt": attempt,
            }
        return _FAILED, {
            "tool_call_id": request.tool_call_id,
            "tool_name": request.tool_name,
            "error_type": outcome.error_type,
            "error_message": outcome.error_message,
            "duration_ms": outcome.duration_ms,
            "attempt": attempt,
            "retryable": outcome.transient,
        }

    async def _end(self, work: _Work, attempt: int, outcome: AttemptOutcome) -> None:
        """Record the call's ending; its request is committable once Kafka has it."""
        if self._parts.get(work.part.number) is not work.part:
            # The partition was lost: its new owner runs the call and records the ending.
            self._answer(work, delivered=True)
            return
        name, body = self._ending(work.request, attempt, outcome)

        def delivered(error: KafkaError | None, message: Message) -> None:
            if error is None:
                if outcome.succeeded:
                    self.progress.completed += 1
                else:
                    self.progress.failed += 1
            else:
                self._failure = (
                    f"the ending of tool call {work.request.tool_call_id}: {error.str()}"
                )
            self._answer(work, delivered=error is None)

        ended = b"completed" if outcome.succeeded else b"failed"
        await self._produce(work, name, body, attempt, ended, delivered)

    async def _produce(
        self,
        work: _Work,
        name: str,
        body: dict[str, Any],
        attempt: int,
        ended: bytes | None,
        on_delivery: Callable[[KafkaError | None, Message], None],
    ) -> None:
        """One event of the call, in the events partition of the request's number."""
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
        headers: list[tuple[str, str | bytes | None]] = [
            (TOOL_CALL_ID, request.tool_call_id.encode()),
            (TOOL_CALL_ATTEMPT, str(attempt).encode()),
        ]
        if ended is not None:
            headers.append((TOOL_CALL_ENDED, ended))
        await self._send(
            self.events_topic,
            work,
            value,
            headers,
            on_delivery,
            timestamp=micros // 1000,
        )

    async def _mark_started(self, work: _Work, attempt: int) -> None:
        """Before an attempt runs, Kafka has its start marker (`tool_protocol`) and, after
        the first, its `tool_call_requested` event: should the tool take the process
        down, the next worker counts this attempt as used, and the log shows it."""
        acknowledgements = [self._acknowledgement() for _ in range(2 if attempt > 1 else 1)]
        headers: list[tuple[str, str | bytes | None]] = [
            (TOOL_CALL_ID, work.request.tool_call_id.encode()),
            (TOOL_CALL_ATTEMPT, str(attempt).encode()),
            (TOOL_CALL_STARTED, b"1"),
        ]
        await self._send(self.topic, work, None, headers, acknowledgements[0][1])
        if attempt > 1:
            body = self._retry_body(work.request, attempt)
            await self._produce(work, _REQUESTED, body, attempt, None, acknowledgements[1][1])
            self.progress.retried += 1
        for acknowledged, _ in acknowledgements:
            error = await acknowledged
            if error is not None:
                self._failure = f"the start of tool call {work.request.tool_call_id}: {error}"
                raise BrokerUnavailable(self._failure)

    def _acknowledgement(
        self,
    ) -> tuple[asyncio.Future[str | None], Callable[[KafkaError | None, Message], None]]:
        """A future of the loop that a delivery report settles: None, or the error."""
        acknowledged: asyncio.Future[str | None] = self._loop.create_future()

        def delivered(error: KafkaError | None, message: Message) -> None:
            self._loop.call_soon_threadsafe(_settle, acknowledged, error)

        return acknowledged, delivered

    async def _send(
        self,
        topic: str,
        work: _Work,
        value: bytes | None,
        headers: list[tuple[str, str | bytes | None]],
        on_delivery: Callable[[KafkaError | None, Message], None],
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
                    partition=work.part.number,
                    timestamp=timestamp,
                    headers=headers,
                    on_delivery=on_delivery,
                )
                return
            except BufferError:
                await asyncio.sleep(0.01)

    def _source(self, agent: str | None) -> dict[str, str | None]:
        source = {"service": self.service, "agent": agent, "version": None}
        self._sources[agent] = source
        return source

    def _answer(self, work: _Work, *, delivered: bool) -> None:
        with self._wake:
            self._answered.append((work, delivered))
            self._wake.notify_all()

    # -- the delivery thread and shutting down ----------------------------------------

    def _serve_deliveries(self) -> None:
        while not self._threads_stop:
            self._producer.poll(0.1)

    def _client_error(self, error: KafkaError) -> None:
        if error.fatal():
            self._failure = f"the tool worker's producer: {error.str()}"

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise BrokerUnavailable(
                f"Kafka did not take {self._failure}; the request is not committed and will "
                "be handed out again"
            )

    def _shut_down(self) -> None:
        """Finish the calls in flight, commit what they ended, leave the group."""
        try:
            while self._in_flight:
                self._apply_answers(wait=True)
            self._commit(set(self._parts), asynchronous=False)
            self.consumer.close()  # revokes (nothing left in flight) and leaves the group
        finally:
            self._threads_stop = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            for thread in self._threads:
                thread.join()
            self._loop.close()
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._producer.flush(self.settings.delivery_timeout_ms / 1000)
