"""The tool worker: a consumer-group member on the tool-requests topic that has each
requested call run (`_runs`) and commits a request only once Kafka acknowledged the
call's ending.

A worker given a partition first reads which of its calls ended already
(`_ledger`), so a worker killed between an ending and its commit causes neither a
second run nor a second ending; one killed mid-call leaves the call to the next owner.
A partition taken away by a rebalance is handed over after its calls in flight have
ended and been committed.

The number of calls in flight is bounded by `concurrency`, and at most as many
requests again are taken from Kafka ahead of time.

The group membership, order, gap re-reads, commits up to the lowest unfinished request
and rebalances are the one committing group member's (`CommittingMember`): a request is
finished once its ending is acknowledged (or it needs no run).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Message

from agentlog.consumers.committing_member import CommittingMember, Handed
from agentlog.consumers.dead_letters import DeadLetter, DeadLetters
from agentlog.consumers.group_start import GroupStart
from agentlog.consumers.tools._ledger import CallLedger, read_ledgers
from agentlog.consumers.tools._registry import ToolRegistry
from agentlog.consumers.tools._runs import CallRunner, ToolRequest, Work
from agentlog.errors import BrokerUnavailable, ConfigurationError, DecodeError
from agentlog.kafka_config import low_latency_group_consumer_config
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
        self._stop = False
        # Which calls of an earlier owner each partition's first requests may have ended.
        self._ledgers: dict[int, CallLedger | None] = {}
        # Requests taken from Kafka that wait for one of the `concurrency` slots.
        self._waiting: deque[tuple[Work, int]] = deque()
        self._in_flight = 0
        self._in_flight_of: Counter[int] = Counter()  # partition -> calls running
        # Calls whose ending Kafka answered for, and whether it took it: the runner's
        # delivery thread appends, the consumer loop applies.
        self._answered: deque[tuple[Work, bool]] = deque()
        self._wake = threading.Condition()
        self._last_poll = 0.0
        self._dead_letters = DeadLetters(settings, group)
        # A new group starts from the oldest request by default: calls that ended are
        # not run again, open ones are.
        self.member = CommittingMember(
            settings,
            self.topic,
            group,
            low_latency_group_consumer_config(settings, group),
            GroupStart(settings, self.topic, group, start, asked=start_asked, notice=notice),
            service="tool worker",
            what="requests",
            assigned=self._assigned,
            settle=self._settle,
            forget=self._forget,
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

    def run(self, *, once: bool = False) -> WorkerProgress:
        """Run calls until stopped; with `once`, until every assigned partition is read
        to its end and its calls have ended. Raises when no partition is assigned within
        `settings.assignment_timeout_s`."""
        self.member.subscribe()
        last_report = time.monotonic()
        try:
            while not self._stop:
                self._apply_answers()
                self._raise_failure()
                self._start_waiting()
                self.member.commit_due(self.settings.tool_commit_interval_ms / 1000)
                now = time.monotonic()
                if self.on_progress is not None and now - last_report >= 1.0:
                    last_report = now
                    self.on_progress(self.progress)
                if once and self._caught_up():
                    break
                for message in self._poll():
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
                self.member.check_assigned()
                with self._wake:
                    if not self._answered:
                        self._wake.wait(_IDLE_WAIT)
                return []
            room = 1
        self._last_poll = time.monotonic()
        return self.member.poll(room, _IDLE_WAIT)

    def _take(self, message: Message) -> None:
        for handed in self.member.take(message):
            self._take_request(handed)

    def _take_request(self, handed: Handed) -> None:
        message, partition, offset = handed.message, handed.partition, handed.offset
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
        ledger = self._ledgers.get(partition)
        if ledger is not None:
            if ledger.needs_check(offset):
                if request.tool_call_id in ledger.ended:
                    self._skipped += 1
                    log.info("tool call %s ended before; not run again", request.tool_call_id)
                    return
                first_attempt = ledger.attempts.get(request.tool_call_id, 0) + 1
            else:
                self._ledgers[partition] = None  # past what an earlier owner could have run
        if not self.member.hold(handed):
            return
        self._waiting.append((Work(partition, handed.generation, offset, request), first_attempt))
        self._start_waiting()

    def _start_waiting(self) -> None:
        while self._waiting and self._in_flight < self.concurrency:
            work, first_attempt = self._waiting.popleft()
            if not self._owns(work):
                continue  # revoked before it started: the next owner runs it
            self._in_flight += 1
            self._in_flight_of[work.partition] += 1
            self._runner.start(work, first_attempt)

    def _caught_up(self) -> bool:
        return (
            self._in_flight == 0
            and not self._waiting
            and not self._answered
            and self.member.caught_up()
        )

    def _owns(self, work: Work) -> bool:
        """Whether the work's partition is still this worker's (asked from the runner's
        thread before an ending is recorded)."""
        return self.member.owns(work.partition, work.generation)

    # -- rebalances -------------------------------------------------------------------

    def _assigned(self, partitions: list[int], starts: dict[int, int]) -> None:
        if partitions:
            self._ledgers.update(read_ledgers(self.settings, starts))

    def _settle(self, partitions: set[int]) -> None:
        """Partitions going away: their calls in flight end first (and are committed)."""
        while any(self._in_flight_of[n] for n in partitions):
            self._apply_answers(wait=True)

    def _forget(self, partitions: set[int]) -> None:
        for number in partitions:
            self._ledgers.pop(number, None)

    # -- endings and commits ----------------------------------------------------------

    def _answer(self, work: Work, delivered: bool) -> None:
        with self._wake:
            self._answered.append((work, delivered))
            self._wake.notify_all()

    def _apply_answers(self, wait: bool = False) -> None:
        """Take the endings Kafka answered for (waiting briefly for one if `wait`). An
        ending Kafka refused leaves its request unfinished: never committed past."""
        if wait:
            with self._wake:
                if not self._answered:
                    self._wake.wait(_IDLE_WAIT)
        while self._answered:
            work, delivered = self._answered.popleft()
            self._in_flight -= 1
            self._in_flight_of[work.partition] -= 1
            if delivered:
                self.member.finish(work.partition, work.generation, work.offset)

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
            # Revokes (nothing left in flight) and leaves the group; bounded, for a broker
            # that is gone.
            self.member.close()
        finally:
            self._runner.close()
