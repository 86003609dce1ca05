"""The trigger runtime: runs `Agents` handlers for the events on the log.

A `TriggerRuntime` is a member of the consumer group `agentlog-agents-<name>` on the
events topic. Each event with handlers goes to its conversation's queue; a bounded pool
of threads runs the queues, one task per conversation at a time, so one conversation's
handlers run in log order while different conversations run concurrently. Offsets are
committed up to the lowest record of each partition not yet finished (run, or held on
the dead-letter topic and acknowledged there): at least once, never skipping.

A handler that still raises after its attempts turns its event into a dead letter (kind
`trigger`) and **parks** the conversation: its later events go to the dead-letter topic
as parked records, in order, instead of running; other conversations go on. Parked
conversations are rebuilt from the dead-letter topic at start (`DeadLetterStates`), and
the runtime follows that topic for control records: `redriven` re-runs the failed
handler, then the parked events in order, then writes `resolved` and unparks;
`skipped` does the same without the failed event. A redrive that fails again writes
`reopened` (the letter is open again, the conversation stays parked); a parked event
that fails for good during a redrive becomes the letter the rest is parked behind.

What is guaranteed after a crash: every handler runs at least once per triggering event
(an event finished but not yet committed runs again); a conversation parked stays
parked; a redrive under way is resumed (its handlers may run again). Events a handler
records through a recorder built with `new_event_id=trigger_event_ids` repeat their ids
(a retry's and a redrive's have their own: they may record other events).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from agentlog.consumers.agents import Agents, Reaction, Trigger, invoke
from agentlog.consumers.consumer_groups import never_assigned
from agentlog.consumers.dead_letters import (
    DEAD_LETTER_ID,
    OPEN,
    REDRIVEN,
    REOPENED,
    RESOLVED,
    SKIPPED,
    TRIGGER,
    DeadLetter,
    DeadLetters,
    DeadLetterStates,
    Held,
    LetterState,
    dead_letter_id,
    dead_letter_states,
    headers_of,
    original_headers,
)
from agentlog.consumers.group_start import GroupStart
from agentlog.errors import BrokerUnavailable, ConfigurationError, DecodeError
from agentlog.kafka_config import group_consumer_config
from agentlog.outage import OutageWatch, close_within
from agentlog.reader import partition_offset, reading_consumer
from agentlog.recorded import Position, RecordedEvent, event_of, recorded_event
from agentlog.serde import decode
from agentlog.settings import Settings
from agentlog.start_from import EARLIEST, StartFrom
from agentlog.topics import partition_count

log = logging.getLogger(__name__)

SessionFactory = Callable[[Trigger], Any]
_IDLE_WAIT = 0.05
_COMMIT_EVERY = 0.5


@dataclass
class TriggerProgress:
    events: int = 0  # events read that have handlers
    handled: int = 0  # handler invocations that succeeded
    retried: int = 0
    dead_lettered: int = 0
    parked: int = 0  # events held behind a dead letter
    redriven: int = 0  # letters redriven whose handler then ran (parked events with it)
    skipped: int = 0  # letters skipped (their parked events ran)
    redrives_failed: int = 0  # redrives whose handler failed again (the letter reopened)
    parked_conversations: int = 0

    def line(self) -> str:
        redrives = f"redriven {self.redriven:,}"
        if self.skipped:
            redrives += f", skipped {self.skipped:,}"
        if self.redrives_failed:
            redrives += f", redrives failed again {self.redrives_failed:,}"
        return (
            f"events {self.events:,}, handled {self.handled:,}, retries {self.retried:,}, "
            f"dead-lettered {self.dead_lettered:,}, parked {self.parked:,} events "
            f"({self.parked_conversations:,} conversations), {redrives}"
        )


@dataclass
class _Event:
    """An event of the log waiting in its conversation's queue."""

    message: Message
    event: RecordedEvent


@dataclass
class _Redrive:
    """A redrive or skip to carry out, in the conversation's queue."""

    letter: LetterState
    action: str


@dataclass
class _Failure:
    reaction: Reaction
    error: BaseException
    attempts: int


@dataclass
class _Partition:
    number: int
    unfinished: set[int] = field(default_factory=set)
    next_offset: int | None = None
    committed: int | None = None
    at_end: bool = False

    def committable(self) -> int | None:
        return min(self.unfinished) if self.unfinished else self.next_offset


class _Stopping(Exception):  # noqa: N818  (a signal, not an error)
    """The runtime stops: leave the event unfinished (it runs again next time)."""


class TriggerRuntime:
    """Runs `agents`' handlers for the events of the partitions the group gives it.
    `session_factory(trigger)` makes the session a handler invocation gets; `flush` (e.g.
    the handlers' recorder's) is called before offsets are committed. At most
    `max_unfinished` events are held (read, not yet finished) before reading pauses."""

    def __init__(
        self,
        settings: Settings,
        agents: Agents,
        session_factory: SessionFactory,
        *,
        group: str | None = None,
        concurrency: int = 8,
        max_unfinished: int = 1000,
        on_progress: Callable[[TriggerProgress], None] | None = None,
        flush: Callable[[], None] | None = None,
        start: StartFrom = EARLIEST,
        start_asked: bool = False,
        notice: Callable[[str], None] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ConfigurationError(f"concurrency must be at least 1, got {concurrency}")
        if not agents.reactions:
            raise ConfigurationError(f"agents {agents.name!r} declare no handlers")
        self.settings = settings
        self.agents = agents
        self.session_factory = session_factory
        self.group = group or agents.group
        self.topic = settings.events_topic
        self.concurrency = concurrency
        self.max_unfinished = max_unfinished
        self.on_progress = on_progress
        self.flush = flush
        self._types = agents.event_types()
        self._progress = TriggerProgress()
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._failure: BaseException | None = None
        self._parts: dict[int, _Partition] = {}
        self._queues: dict[str, deque[_Event | _Redrive]] = {}
        self._running: set[str] = set()
        self._partition_of: dict[str, int] = {}
        # Conversation -> the letter it is parked behind (conversations of owned partitions).
        self._parked: dict[str, LetterState] = {}
        self._paused = False
        self._assigned_once = False
        self._dlq_pending: set[int] = set()
        self._dead_letters = DeadLetters(settings, self.group)
        self._dlq_lock = threading.Lock()  # one round of dead-letter writes at a time
        self._states = DeadLetterStates()
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix=f"agents-{agents.name}")
        self._outage = OutageWatch(settings, f"agents of group {self.group}")
        config = group_consumer_config(settings, self.group)
        config["error_cb"] = self._outage.on_error
        self.consumer = Consumer(config)
        # Where a new group starts (a group with commits resumes from them).
        self._start = GroupStart(
            settings, self.topic, self.group, start, asked=start_asked, notice=notice
        )
        self._follower: Consumer | None = None

    @property
    def progress(self) -> TriggerProgress:
        with self._lock:
            self._progress.parked_conversations = len(self._parked)
            return TriggerProgress(**vars(self._progress))

    def stop(self) -> None:
        """Take no more events; let handlers running now end (safe from a signal handler)."""
        self._stopping.set()

    # -- the loop -----------------------------------------------------------------------

    def run(self, *, once: bool = False) -> TriggerProgress:
        """Run handlers until stopped; with `once`, until every assigned partition and the
        dead-letter topic are read to their ends and nothing is left to run."""
        self._states = dead_letter_states(self.settings)
        self._follow_dead_letters()
        self.consumer.subscribe(
            [self.topic], on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._lost
        )
        started = last_report = time.monotonic()
        timeout = self.settings.assignment_timeout_s
        try:
            while not self._stopping.is_set():
                self._raise_failure()
                self._read_controls()
                self._commit_due()
                self._pause_when_full()
                now = time.monotonic()
                if self.on_progress is not None and now - last_report >= 1.0:
                    last_report = now
                    self.on_progress(self.progress)
                if once and self._caught_up():
                    break
                if not self._assigned_once and now - started > timeout:
                    raise never_assigned(self.settings, self.topic, self.group, timeout)
                messages = self.consumer.consume(500, _IDLE_WAIT)
                if messages:
                    self._outage.answered()
                self._outage.check(self.consumer, self.topic)
                for message in messages:
                    self._take(message)
            self._raise_failure()
            # Shutting down gives the partitions up, and with them the parked conversations
            # this runtime held: they are still parked (on the dead-letter topic).
            still_parked = self.progress.parked_conversations
        finally:
            self._shut_down()
        final = self.progress
        final.parked_conversations = still_parked
        return final

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _take(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                part = self._parts.get(partition_offset(message)[0])
                if part is not None:
                    part.at_end = True
            elif error.fatal():
                raise BrokerUnavailable(f"trigger runtime consumer failed: {error.str()}")
            else:
                log.warning("trigger runtime consumer: %s", error.str())
            return
        partition, offset = partition_offset(message)
        with self._lock:
            part = self._parts.get(partition)
            if part is None:
                return  # revoked while the record was on its way
            part.at_end = False
            part.next_offset = offset + 1
        try:
            event = recorded_event(message)
        except DecodeError as exc:
            # Not an event: no handler can take it. Kept on the dead-letter topic; it
            # parks nothing (it names no conversation a handler saw).
            decode_error = f"{DecodeError.__module__}.{DecodeError.__name__}"
            self._deliver(DeadLetter(message, str(exc), 1, decode_error, str(exc), kind=TRIGGER))
            return
        if event.event_type not in self._types:
            return
        with self._lock:
            self._progress.events += 1
            part.unfinished.add(offset)
        self._enqueue(event.conversation_id, partition, _Event(message, event))

    def _enqueue(self, conversation: str, partition: int, item: _Event | _Redrive) -> None:
        with self._lock:
            self._partition_of[conversation] = partition
            self._queues.setdefault(conversation, deque()).append(item)
            if conversation in self._running:
                return
            self._running.add(conversation)
        self._pool.submit(self._drain, conversation)

    def _drain(self, conversation: str) -> None:
        """Run a conversation's queue in order (one pool thread at a time per conversation)."""
        try:
            while not self._stopping.is_set():
                with self._lock:
                    queue = self._queues.get(conversation)
                    if not queue:
                        self._queues.pop(conversation, None)
                        self._running.discard(conversation)
                        return
                    item = queue[0]
                if isinstance(item, _Event):
                    self._run_event(item)
                else:
                    self._run_redrive(item)
                with self._lock:
                    queue.popleft()
        except _Stopping:
            pass
        except BaseException as exc:  # a dead-letter topic that does not answer, a bug
            log.error("trigger runtime: %s", exc)
            self._failure = exc
            self._stopping.set()
        with self._lock:
            self._running.discard(conversation)

    def _finish(self, partition: int, offset: int) -> None:
        with self._lock:
            part = self._parts.get(partition)
            if part is not None:
                part.unfinished.discard(offset)

    # -- running events -----------------------------------------------------------------

    def _run_event(self, item: _Event) -> None:
        event = item.event
        with self._lock:
            letter = self._parked.get(event.conversation_id)
        # One conversation is in one partition, so offsets order its events.
        if letter is not None and event.offset >= letter.held.origin_offset:
            if event.offset > letter.held.origin_offset:
                self._park(item.message, letter)
            # else: the failed event itself, read again after a restart (it is the letter)
            self._finish(event.partition, event.offset)
            return
        # Not parked, or earlier than the failure (read again after a restart: it runs
        # again, at least once).
        failure = self._run_handlers(event)
        if failure is not None:
            self._dead_letter(item.message, event, failure)
        self._finish(event.partition, event.offset)

    def _run_handlers(
        self, event: RecordedEvent, after: str | None = None, redrive: int = 0
    ) -> _Failure | None:
        """Run every handler of the event (from the one named `after` on), each with its
        retries; the first that fails for good stops the rest. `redrive`: which redrive of
        the event's letter this is (1 for the first; 0: not a redrive)."""
        for reaction in self.agents.reactions_to(event.event_type, after):
            failure = self._run_handler(reaction, event, redrive)
            if failure is not None:
                return failure
        return None

    def _run_handler(
        self, reaction: Reaction, event: RecordedEvent, redrive: int = 0
    ) -> _Failure | None:
        error: BaseException | None = None
        for attempt in range(1, self.agents.attempts + 1):
            if attempt > 1:
                with self._lock:
                    self._progress.retried += 1
                if self._stopping.wait(self.agents.backoff_before(attempt)):
                    raise _Stopping()
            trigger = Trigger(event, self.agents.name, reaction.name, attempt, redrive)
            try:
                if not reaction.wants(event):
                    return None
                invoke(reaction, trigger, functools.partial(self.session_factory, trigger))
            except Exception as exc:
                error = exc
                log.warning(
                    "%s failed on %s (attempt %d of %d): %s",
                    reaction.name,
                    dead_letter_id(event.topic, event.partition, event.offset),
                    attempt,
                    self.agents.attempts,
                    exc,
                )
                continue
            with self._lock:
                self._progress.handled += 1
            return None
        assert error is not None
        return _Failure(reaction, error, self.agents.attempts)

    # -- dead letters and parking -------------------------------------------------------

    def _deliver(self, letter: DeadLetter) -> None:
        with self._dlq_lock:
            delivery = self._dead_letters.deliver([letter], self.settings.dead_letter_timeout_s)
        if delivery.failed:
            raise BrokerUnavailable(
                f"{self._dead_letters.topic} did not take the dead letter of {letter.id} "
                f"({delivery.failed[0][1]}); its event stays uncommitted"
            )
        with self._lock:
            self._progress.dead_lettered += 1

    def _dead_letter(self, message: Message, event: RecordedEvent, failure: _Failure) -> None:
        """Keep the event as a dead letter and park its conversation behind it."""
        kind = type(failure.error)
        letter = DeadLetter(
            message,
            f"{failure.reaction.name} raised {kind.__name__}: {failure.error}",
            failure.attempts,
            f"{kind.__module__}.{kind.__qualname__}",
            str(failure.error),
            kind=TRIGGER,
            conversation=event.conversation_id,
            handler=failure.reaction.name,
        )
        self._deliver(letter)
        # Fold in what was sent now: the follower's copy of it will be a repeat.
        record = self._as_dead_letter_record(message, letter)
        with self._lock:
            state = self._states.add(record) or self._states.letters[(self.group, letter.id)]
            self._parked[event.conversation_id] = state

    def _as_dead_letter_record(self, message: Message, letter: DeadLetter) -> Message:
        headers = self._dead_letters.headers_of(letter)
        return Message(
            topic=self._dead_letters.topic,
            key=message.key(),
            value=message.value(),
            headers=headers,
        )

    def _park(self, message: Message, letter: LetterState) -> None:
        with self._dlq_lock:
            self._dead_letters.park(message, letter.id, self.settings.dead_letter_timeout_s)
        partition, offset = partition_offset(message)
        held = Held(
            message.key(),
            message.value(),
            headers_of(message),
            message.topic() or "",
            partition,
            offset,
            message.timestamp()[1],
            -1,
            -1,
        )
        with self._lock:
            letter.add_parked(held)
            self._progress.parked += 1

    def _control(self, letter: LetterState, action: str, error: str | None = None) -> None:
        with self._dlq_lock:
            self._dead_letters.control(
                letter, action, self.settings.dead_letter_timeout_s, error=error
            )
        with self._lock:
            self._states.apply(letter, action, error=error)

    # -- redrive and skip ---------------------------------------------------------------

    def _run_redrive(self, item: _Redrive) -> None:
        letter = item.letter
        conversation = letter.conversation or ""
        if item.action == REDRIVEN:
            event = self._event_of(letter.held)
            # Counted from the letter's history: a redrive resumed after a crash is the same.
            redrive = letter.history.count(REDRIVEN)
            failure = self._run_handlers(event, after=letter.handler, redrive=redrive)
            if failure is not None:
                error = f"{failure.reaction.name} raised {type(failure.error).__name__}: "
                self._control(letter, REOPENED, error + str(failure.error))
                with self._lock:
                    self._progress.redrives_failed += 1
                return
        with self._lock:
            parked = list(letter.parked)
        for index, held in enumerate(parked):
            event = self._event_of(held)
            failure = self._run_handlers(event)
            if failure is not None:
                # The rest waits behind this one now.
                self._dead_letter(held_record(held), event, failure)
                with self._lock:
                    successor = self._parked[conversation]
                for later in parked[index + 1 :]:
                    self._park(held_record(later), successor)
                self._control(letter, RESOLVED)
                self._count_done(item.action)
                return
        self._control(letter, RESOLVED)
        with self._lock:
            if self._parked.get(conversation) is letter:
                del self._parked[conversation]
        self._count_done(item.action)
        log.info("%s %s: %d parked events ran", item.action, letter.id, len(parked))

    def _count_done(self, action: str) -> None:
        with self._lock:
            if action == SKIPPED:
                self._progress.skipped += 1
            else:
                self._progress.redriven += 1

    def _event_of(self, held: Held) -> RecordedEvent:
        return event_of(
            decode(
                held.value,
                topic=held.origin_topic,
                partition=held.origin_partition,
                offset=held.origin_offset,
            ),
            Position(
                held.origin_topic,
                held.origin_partition,
                held.origin_offset,
                held.origin_timestamp_ms,
            ),
        )

    # -- the dead-letter topic: control records -----------------------------------------

    def _follow_dead_letters(self) -> None:
        count = partition_count(self.settings, self.settings.dlq_topic)
        self._follower = reading_consumer(self.settings)
        starts = [
            TopicPartition(self.settings.dlq_topic, p, self._states.ends.get(p, OFFSET_BEGINNING))
            for p in range(count)
        ]
        self._follower.assign(starts)
        self._dlq_pending = set(range(count))

    def _read_controls(self) -> None:
        """Fold in what the dead-letter topic got since; start redrives and skips of this
        group's letters whose conversations this member owns."""
        assert self._follower is not None
        for record in self._follower.consume(100, 0):
            error = record.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    self._dlq_pending.discard(partition_offset(record)[0])
                elif error.fatal():
                    raise BrokerUnavailable(f"reading the dead-letter topic: {error.str()}")
                continue
            self._dlq_pending.add(partition_offset(record)[0])
            with self._lock:
                before = self._state_of(record)
                letter = self._states.add(record)
                if letter is None or letter.group != self.group or before == letter.state:
                    continue
                started = letter.state in (REDRIVEN, SKIPPED) and before == OPEN
            if started:
                self._start_redrive(letter)

    def _state_of(self, record: Message) -> str | None:
        letter_id = dict(headers_of(record)).get(DEAD_LETTER_ID)
        if letter_id is None:
            return None
        letter = self._states.letters.get((self.group, letter_id.decode()))
        return letter.state if letter is not None else None

    def _start_redrive(self, letter: LetterState) -> None:
        partition = letter.held.origin_partition
        with self._lock:
            owned = partition in self._parts and letter.held.origin_topic == self.topic
        if owned and letter.conversation is not None:
            self._enqueue(letter.conversation, partition, _Redrive(letter, letter.state))

    # -- rebalances ---------------------------------------------------------------------

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned_once = True
        numbers = {tp.partition for tp in partitions}
        resume: list[LetterState] = []
        with self._lock:
            for number in numbers:
                self._parts[number] = _Partition(number)
            letters = sorted(
                (
                    letter
                    for letter in self._states.letters.values()
                    if letter.group == self.group
                    and letter.parks_conversation
                    and letter.held.origin_topic == self.topic
                    and letter.held.origin_partition in numbers
                ),
                key=lambda letter: letter.held.origin_offset,
            )
            for letter in letters:
                assert letter.conversation is not None
                # The oldest letter of a conversation is the one it waits behind.
                self._parked.setdefault(letter.conversation, letter)
                if letter.state != OPEN:
                    resume.append(letter)  # a redrive or skip that did not finish
        if partitions:
            firsts = self._start.offsets(consumer, sorted(numbers))
            for tp in partitions:
                tp.offset = firsts[tp.partition]
        consumer.assign(partitions)
        for letter in resume:
            self._start_redrive(letter)
        log.info("assigned %s; %d conversations parked", sorted(numbers), len(self._parked))

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Let the work of the partitions going away end, commit it, forget them."""
        numbers = {tp.partition for tp in partitions}
        while not self._stopping.is_set() and self._busy(numbers):
            time.sleep(_IDLE_WAIT)
        self._commit(numbers, asynchronous=False)
        self._forget(numbers)
        consumer.unassign()

    def _lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._forget({tp.partition for tp in partitions})
        log.warning("partitions %s were lost to the group", [tp.partition for tp in partitions])
        consumer.unassign()

    def _busy(self, numbers: set[int]) -> bool:
        with self._lock:
            return any(self._partition_of.get(c) in numbers for c in self._running)

    def _forget(self, numbers: set[int]) -> None:
        with self._lock:
            for number in numbers:
                self._parts.pop(number, None)
            for conversation, partition in list(self._partition_of.items()):
                if partition in numbers and conversation not in self._running:
                    self._partition_of.pop(conversation)
                    self._parked.pop(conversation, None)
                    self._queues.pop(conversation, None)

    # -- commits and flow ---------------------------------------------------------------

    def _commit_due(self) -> None:
        now = time.monotonic()
        if now - getattr(self, "_last_commit", 0.0) >= _COMMIT_EVERY:
            self._last_commit = now
            self._commit(set(self._parts), asynchronous=True)

    def _commit(self, numbers: set[int], *, asynchronous: bool) -> None:
        moves: list[tuple[_Partition, int]] = []
        with self._lock:
            for number in numbers:
                part = self._parts.get(number)
                position = part.committable() if part is not None else None
                if part is not None and position is not None and position != part.committed:
                    moves.append((part, position))
        if moves:
            if self.flush is not None:
                # What the handlers of these events recorded is on Kafka before they count
                # as done (else a crash after the commit would lose it).
                self.flush()
            offsets = []
            for part, position in moves:
                part.committed = position
                offsets.append(TopicPartition(self.topic, part.number, position))
            try:
                if asynchronous:
                    self.consumer.commit(offsets=offsets, asynchronous=True)
                else:
                    self.consumer.commit(offsets=offsets, asynchronous=False)
            except Exception as exc:  # a rebalance under way: the next owner reads again
                log.warning("commit of %s failed: %s", offsets, exc)

    def _pause_when_full(self) -> None:
        with self._lock:
            unfinished = sum(len(p.unfinished) for p in self._parts.values())
            assigned = [TopicPartition(self.topic, n) for n in self._parts]
        if not self._paused and unfinished >= self.max_unfinished:
            self.consumer.pause(assigned)
            self._paused = True
        elif self._paused and unfinished < self.max_unfinished // 2:
            self.consumer.resume(assigned)
            self._paused = False

    def _caught_up(self) -> bool:
        with self._lock:
            return (
                self._assigned_once
                and not self._running
                and not self._dlq_pending
                and all(
                    p.at_end and not p.unfinished and p.committed == p.committable()
                    for p in self._parts.values()
                )
                and not any(letter.state != OPEN for letter in self._parked.values())
            )

    def _shut_down(self) -> None:
        self._stopping.set()
        self._pool.shutdown(wait=True)
        try:
            self._commit(set(self._parts), asynchronous=False)
        finally:
            close_within(self.consumer, f"agents of group {self.group}")
            if self._follower is not None:
                close_within(self._follower, f"agents of group {self.group} (dead letters)")
            self._dead_letters.close()


def held_record(held: Held) -> Message:
    """A record held on the dead-letter topic as it was on its own topic."""
    return Message(
        topic=held.origin_topic,
        partition=held.origin_partition,
        offset=held.origin_offset,
        key=held.key,
        value=held.value,
        headers=cast(list[tuple[str, str | bytes | None]], original_headers(held.headers)),
        timestamp=(1, held.origin_timestamp_ms or 0),
    )
