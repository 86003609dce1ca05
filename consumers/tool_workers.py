"""The tool worker: a consumer-group member on the tool-requests topic that has each
requested call run (`tool_runs`) and commits a request only once Kafka acknowledged the
call's ending.

A worker given a partition first reads which of its calls ended already
(`tool_ledger`), so a worker killed between an ending and its commit causes neither a
second run nor a second ending; one killed mid-call leaves the call to the next owner.
A partition taken away by a rebalance is handed over after its calls in flight have
ended and been committed.

The number of calls in flight is bounded by `concurrency`, and at most as many
requests again are taken from Kafka ahead of time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from agentlog.consumers.consumer_groups import never_assigned
from agentlog.consumers.dead_letters import DeadLetter, DeadLetters
from agentlog.consumers.group_start import GroupStart
from agentlog.consumers.tool_ledger import CallLedger, read_ledgers
from agentlog.consumers.tool_registry import ToolRegistry
from agentlog.consumers.tool_runs import CallRunner, ToolRequest, Work
from agentlog.errors import (
    BrokerUnavailable,
    CommitPastUnfinished,
    ConfigurationError,
    DecodeError,
)
from agentlog.kafka_config import low_latency_group_consumer_config
from agentlog.outage import OutageWatch, close_within
from agentlog.reader import partition_offset, read_gap
from agentlog.settings import Settings
from agentlog.start_from import EARLIEST, StartFrom
from agentlog.tool_protocol import TOOL_CALL_STARTED, header, tool_partitions

log = logging.getLogger(__name__)

DEFAULT_TOOL_GROUP = "agentlog-tools"
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


@dataclass
class _Partition:
    """One assigned tool-requests partition: the calls in flight and what may be
    committed (every offset below the lowest call not yet acknowledged, and never past an
    offset this worker was not handed)."""

    number: int
    # Which assignment of the partition this is: work of an earlier one is stale.
    generation: int
    ledger: CallLedger | None
    committed: int
    # The next offset expected from Kafka: every offset below it was handed to this
    # worker (a gap is read again before anything after it is taken).
    next_offset: int
    in_flight: set[int] = field(default_factory=set)
    # Offsets taken from Kafka, waiting for a free slot.
    waiting: set[int] = field(default_factory=set)
    # Offsets whose ending Kafka refused: never committed past.
    undelivered: set[int] = field(default_factory=set)
    at_end: bool = False

    def committable(self) -> int:
        blocked = self.in_flight | self.waiting | self.undelivered
        return min(blocked) if blocked else self.next_offset

    def committed_all(self) -> bool:
        return self.committable() == self.committed

    def check_commit(self, position: int) -> None:
        """The guard: committing `position` must leave no request behind unfinished."""
        unfinished = sorted(
            o for o in self.in_flight | self.waiting | self.undelivered if o < position
        )
        if unfinished or position > self.next_offset:
            raise CommitPastUnfinished(
                f"refusing to commit offset {position} of tool-requests partition "
                f"{self.number}: requests {unfinished[:5]} are unfinished and offsets from "
                f"{self.next_offset} on were never handed to this worker"
            )


class ToolWorker:
    """Runs the registry's tools for the requests of the partitions the group gives it."""

    def __init__(
        self,
        settings: Settings,
        registry: ToolRegistry,
        *,
        group: str = DEFAULT_TOOL_GROUP,
        concurrency: int = 8,
        service: str = "agentlog-tools",
        on_progress: ProgressCallback | None = None,
        start: StartFrom = EARLIEST,
        start_asked: bool = False,
        notice: Callable[[str], None] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ConfigurationError(f"concurrency must be at least 1, got {concurrency}")
        self.settings = settings
        self.group = group
        self.concurrency = concurrency
        self.on_progress = on_progress
        self.topic = settings.tool_requests_topic
        tool_partitions(settings)  # refuses topics whose partition counts differ
        self._skipped = 0
        self._dead_lettered = 0
        self._parts: dict[int, _Partition] = {}
        self._generations = 0
        self._stop = False
        self._assigned_once = False
        # Requests taken from Kafka that wait for one of the `concurrency` slots.
        self._waiting: deque[tuple[Work, int]] = deque()
        self._in_flight = 0
        # Calls whose ending Kafka answered for, and whether it took it: the runner's
        # delivery thread appends, the consumer loop applies.
        self._answered: deque[tuple[Work, bool]] = deque()
        self._wake = threading.Condition()
        self._last_poll = 0.0
        self._last_commit = 0.0
        self._dead_letters = DeadLetters(settings, group)
        self._outage = OutageWatch(settings, f"tool worker of group {group}")
        config = low_latency_group_consumer_config(settings, group)
        config["error_cb"] = self._outage.on_error
        self.consumer = Consumer(config)
        # A new group starts from the oldest request by default: calls that ended are
        # not run again, open ones are.
        self._start = GroupStart(
            settings, self.topic, group, start, asked=start_asked, notice=notice
        )
        self._runner = CallRunner(
            settings,
            registry,
            concurrency=concurrency,
            service=service,
            still_owned=self._owns,
            answered=self._answer,
        )

    @property
    def progress(self) -> WorkerProgress:
        counts = self._runner.counts
        return WorkerProgress(
            completed=counts.completed,
            failed=counts.failed,
            retried=counts.retried,
            skipped=self._skipped,
            dead_lettered=self._dead_lettered,
            in_flight=self._in_flight,
        )

    @property
    def tools_still_running(self) -> int:
        """Sync tool calls whose thread runs on though their attempt ended (timed out)."""
        return self._runner.tools_still_running

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
                    self.on_progress(self.progress)
                if once and self._caught_up():
                    break
                if not self._assigned_once and now - started > assignment_timeout:
                    raise never_assigned(self.settings, self.topic, self.group, assignment_timeout)
                messages = self._poll()
                if messages:
                    self._outage.answered()
                self._outage.check(self.consumer, self.topic)
                for message in messages:
                    self._take(message)
        finally:
            self._shut_down()
        return self.progress

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
        if offset < part.next_offset:
            return  # handed again: taken already
        if offset > part.next_offset:
            # Offsets Kafka did not hand over: read them again, never pass over a request.
            gap = read_gap(self.settings, self.topic, partition, part.next_offset, offset)
            for missing in gap:
                self._take_record(part, missing, partition_offset(missing)[1])
        self._take_record(part, message, offset)

    def _take_record(self, part: _Partition, message: Message, offset: int) -> None:
        partition = part.number
        part.next_offset = offset + 1
        if header(message.headers(), TOOL_CALL_STARTED) is not None:
            return  # a worker's start marker, for the ledger
        try:
            request = ToolRequest.of(message, self.topic, partition, offset)
        except DecodeError as exc:
            # It names no call to end: keep it on the dead-letter topic, acknowledged
            # before its offset can be committed.
            log.error("dead-lettering %s", exc)
            decode_error = f"{DecodeError.__module__}.{DecodeError.__name__}"
            letter = DeadLetter(message, str(exc), 1, decode_error, str(exc))
            delivery = self._dead_letters.deliver([letter], self.settings.dead_letter_timeout_s)
            if delivery.failed:
                raise BrokerUnavailable(
                    f"{self._dead_letters.topic} did not take the dead letter of "
                    f"{letter.id} ({delivery.failed[0][1]}); its request stays uncommitted"
                ) from None
            self._dead_lettered += 1
            return
        first_attempt = 1
        if part.ledger is not None:
            if part.ledger.needs_check(offset):
                if request.tool_call_id in part.ledger.ended:
                    self._skipped += 1
                    log.info("tool call %s ended before; not run again", request.tool_call_id)
                    return
                first_attempt = part.ledger.attempts.get(request.tool_call_id, 0) + 1
            else:
                part.ledger = None  # past what an earlier owner could have run
        part.waiting.add(offset)
        self._waiting.append((Work(partition, part.generation, offset, request), first_attempt))
        self._start_waiting()

    def _start_waiting(self) -> None:
        while self._waiting and self._in_flight < self.concurrency:
            work, first_attempt = self._waiting.popleft()
            part = self._part_of(work)
            if part is None:
                continue  # revoked before it started: the next owner runs it
            part.waiting.discard(work.offset)
            part.in_flight.add(work.offset)
            self._in_flight += 1
            self._runner.start(work, first_attempt)

    def _caught_up(self) -> bool:
        return (
            self._assigned_once
            and self._in_flight == 0
            and not self._waiting
            and not self._answered
            and all(p.at_end and p.committed_all() for p in self._parts.values())
        )

    def _part_of(self, work: Work) -> _Partition | None:
        part = self._parts.get(work.partition)
        return part if part is not None and part.generation == work.generation else None

    def _owns(self, work: Work) -> bool:
        """Whether the work's partition is still this worker's (asked from the runner's
        thread before an ending is recorded)."""
        return self._part_of(work) is not None

    # -- rebalances -------------------------------------------------------------------

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned_once = True
        if not partitions:  # more workers than partitions: this one waits as a spare
            consumer.assign(partitions)
            return
        starts = self._start.offsets(consumer, sorted(tp.partition for tp in partitions))
        ledgers = read_ledgers(self.settings, starts)
        for tp in partitions:
            self._generations += 1
            tp.offset = starts[tp.partition]
            start = max(0, tp.offset)
            self._parts[tp.partition] = _Partition(
                tp.partition, self._generations, ledgers[tp.partition], start, start
            )
        consumer.assign(partitions)
        log.info("assigned %s", starts)

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

    # -- endings and commits ----------------------------------------------------------

    def _answer(self, work: Work, delivered: bool) -> None:
        with self._wake:
            self._answered.append((work, delivered))
            self._wake.notify_all()

    def _apply_answers(self, wait: bool = False) -> None:
        """Take the endings Kafka answered for (waiting briefly for one if `wait`)."""
        if wait:
            with self._wake:
                if not self._answered:
                    self._wake.wait(_IDLE_WAIT)
        while self._answered:
            work, delivered = self._answered.popleft()
            self._in_flight -= 1
            part = self._part_of(work)
            if part is not None:
                part.in_flight.discard(work.offset)
                if not delivered:
                    part.undelivered.add(work.offset)

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
            if position != part.committed:
                part.check_commit(position)
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

    # -- stopping ---------------------------------------------------------------------

    def _raise_failure(self) -> None:
        if self._runner.failure is not None:
            raise BrokerUnavailable(
                f"Kafka did not take {self._runner.failure}; the request is not committed "
                "and will be handed out again"
            )

    def _shut_down(self) -> None:
        """Finish the calls in flight, commit what they ended, leave the group."""
        try:
            while self._in_flight:
                self._apply_answers(wait=True)
            self._commit(set(self._parts), asynchronous=False)
            # Revokes (nothing left in flight) and leaves the group; bounded, for a broker
            # that is gone.
            close_within(self.consumer, f"tool worker of group {self.group}")
        finally:
            self._runner.close()
