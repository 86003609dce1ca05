"""The trigger runtime: runs `Agents` handlers for the events on the log.

A `TriggerRuntime` is a member of the consumer group `agentlog-agents-<name>` on the
events topic. Each event with handlers goes to its conversation's queue; a bounded pool
of threads runs the queues, one task per conversation at a time, so one conversation's
handlers run in log order while different conversations run concurrently. Offsets are
committed up to the lowest record of each partition not yet finished (run, or held on
the dead-letter topic and acknowledged there) by the one committing group member
(`CommittingMember`, which also reads again any offsets a fetch left out): at least
once, never skipping.

A handler that still raises after its attempts turns its event into a dead letter (kind
`trigger`) and **parks** the conversation (`_parking`): its later events go to the
dead-letter topic instead of running, until the letter is redriven or skipped, which the
runtime learns by following that topic (`_follower`); other conversations go on.

What is guaranteed after a crash: every handler runs at least once per triggering event
(an event finished but not yet committed runs again); a conversation parked stays
parked; a redrive under way is resumed (its handlers may run again). Events a handler
records through a recorder built with `new_event_id=trigger_event_ids` repeat their ids
(a retry's and a redrive's have their own: they may record other events).
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Message

from agentlog.consumers.committing_member import CommittingMember, Handed
from agentlog.consumers.dead_letters import (
    TRIGGER,
    DeadLetter,
    LetterState,
    dead_letter_id,
    dead_letter_states,
)
from agentlog.consumers.group_start import GroupStart
from agentlog.consumers.triggers._agents import Agents, Reaction, Trigger, invoke
from agentlog.consumers.triggers._follower import ControlFollower
from agentlog.consumers.triggers._parking import Failure, Parking, Redrive
from agentlog.errors import ConfigurationError, DecodeError
from agentlog.kafka_config import group_consumer_config
from agentlog.recorded import RecordedEvent, recorded_event
from agentlog.settings import Settings
from agentlog.start_from import EARLIEST, StartFrom

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


@dataclass(slots=True)
class _Event:
    """An event of the log waiting in its conversation's queue."""

    message: Message
    event: RecordedEvent
    generation: int  # which assignment of its partition handed it


class _Stopping(Exception):  # noqa: N818  (a signal, not an error)
    """The runtime stops: leave the event unfinished (it runs again next time)."""


class _ConversationPool:
    """`size` threads that run `drain(conversation)` for the conversations handed to
    `submit`. A plain queue of names, handed over a few at a time: a ThreadPoolExecutor's
    future per event, and waking a thread per conversation, cost more than a no-op
    handler; a few per hand-over still lets idle threads take the rest."""

    def __init__(self, size: int, name: str, drain: Callable[[str], None]) -> None:
        self._size = size
        self._name = name
        self._drain = drain
        self._ready: queue.SimpleQueue[list[str] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def submit(self, conversations: list[str]) -> None:
        if not conversations:
            return
        if not self._threads:
            self._threads = [
                threading.Thread(target=self._work, name=f"{self._name}-{n}", daemon=True)
                for n in range(self._size)
            ]
            for thread in self._threads:
                thread.start()
        step = max(1, len(conversations) // (4 * self._size))
        for start in range(0, len(conversations), step):
            self._ready.put(conversations[start : start + step])

    def _work(self) -> None:
        while (conversations := self._ready.get()) is not None:
            for conversation in conversations:
                self._drain(conversation)

    def shutdown(self) -> None:
        """Run what was submitted (drains return at once once the runtime stops), then
        end the threads."""
        for _ in self._threads:
            self._ready.put(None)
        for thread in self._threads:
            thread.join()
        self._threads = []


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
        # The handlers of each event type, in declaration order (declared before the run).
        self._reactions = {t: agents.reactions_to(t) for t in agents.event_types()}
        self._progress = TriggerProgress()
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._failure: BaseException | None = None
        self._queues: dict[str, deque[_Event | Redrive]] = {}
        self._running: set[str] = set()
        self._partition_of: dict[str, int] = {}
        self.parking = Parking(settings, self.group, self.topic, self._lock, self._progress)
        self._pool = _ConversationPool(concurrency, f"agents-{agents.name}", self._drain)
        # Where a new group starts (a group with commits resumes from them).
        self.member = CommittingMember(
            settings,
            self.topic,
            self.group,
            group_consumer_config(settings, self.group),
            GroupStart(settings, self.topic, self.group, start, asked=start_asked, notice=notice),
            service="agents",
            what="events",
            assigned=self._assigned,
            settle=self._settle,
            forget=self._forget,
            flush=flush,
        )
        self._follower: ControlFollower | None = None

    @property
    def progress(self) -> TriggerProgress:
        with self._lock:
            self._progress.parked_conversations = len(self.parking.parked)
            return TriggerProgress(**vars(self._progress))

    def stop(self) -> None:
        """Take no more events; let handlers running now end (safe from a signal handler)."""
        self._stopping.set()

    # -- the loop -----------------------------------------------------------------------

    def run(self, *, once: bool = False) -> TriggerProgress:
        """Run handlers until stopped; with `once`, until every assigned partition and the
        dead-letter topic are read to their ends and nothing is left to run. Raises when
        no partition is assigned within `settings.assignment_timeout_s`."""
        # The group forms in the client's background while the dead-letter topic is read:
        # the assignment (which needs the parked conversations) is served by the first
        # poll, after it.
        self.member.subscribe()
        self.parking.states = dead_letter_states(self.settings)
        self._follower = ControlFollower(self.settings, self.group, self.parking.states)
        last_report = time.monotonic()
        try:
            while not self._stopping.is_set():
                self._raise_failure()
                for letter in self._follower.read(self._lock):
                    self._start_redrive(letter)
                self.member.commit_due(_COMMIT_EVERY)
                unfinished = self.member.unfinished()
                self.member.pause_while(
                    unfinished >= self.max_unfinished, unfinished < self.max_unfinished // 2
                )
                now = time.monotonic()
                if self.on_progress is not None and now - last_report >= 1.0:
                    last_report = now
                    self.on_progress(self.progress)
                if once and self._caught_up():
                    break
                self._take(self.member.poll(500, _IDLE_WAIT))
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

    def _take(self, messages: list[Message]) -> None:
        """Take a batch: decode its events first, then queue them all at once (one lock,
        one wake-up per conversation), so that the handler threads do not contend with
        decoding for the interpreter event by event."""
        taken: list[_Event] = []
        for message in messages:
            for handed in self.member.take(message):
                item = self._event_of(handed)
                if item is not None:
                    taken.append(item)
        if not taken:
            return
        ready: list[str] = []
        with self._lock:
            self._progress.events += len(taken)
            for item in taken:
                conversation = item.event.conversation_id
                if self._queue(conversation, item.event.partition, item):
                    ready.append(conversation)
        self._pool.submit(ready)

    def _event_of(self, handed: Handed) -> _Event | None:
        """The event to run handlers for, held by the member until they ran; None for an
        event no handler takes (or not an event: that goes to the dead-letter topic)."""
        message = handed.message
        try:
            event = recorded_event(message)
        except DecodeError as exc:
            # Not an event: no handler can take it. Kept on the dead-letter topic; it
            # parks nothing (it names no conversation a handler saw).
            decode_error = f"{DecodeError.__module__}.{DecodeError.__name__}"
            self.parking.deliver(
                DeadLetter(message, str(exc), 1, decode_error, str(exc), kind=TRIGGER)
            )
            return None
        if event.event_type not in self._reactions or not self.member.hold(handed):
            return None
        return _Event(message, event, handed.generation)

    def _queue(self, conversation: str, partition: int, item: _Event | Redrive) -> bool:
        """Append to the conversation's queue (holding the lock); whether the conversation
        must be handed to a thread (none runs it)."""
        self._partition_of[conversation] = partition
        waiting = self._queues.get(conversation)
        if waiting is None:
            waiting = self._queues[conversation] = deque()
        waiting.append(item)
        if conversation in self._running:
            return False
        self._running.add(conversation)
        return True

    def _enqueue(self, conversation: str, partition: int, item: _Event | Redrive) -> None:
        with self._lock:
            ready = self._queue(conversation, partition, item)
        if ready:
            self._pool.submit([conversation])

    def _drain(self, conversation: str) -> None:
        """Run a conversation's queue in order (one pool thread at a time per
        conversation); what is left when the runtime stops stays unfinished."""
        try:
            while not self._stopping.is_set():
                with self._lock:
                    waiting = self._queues.get(conversation)
                    if not waiting:
                        self._queues.pop(conversation, None)
                        self._running.discard(conversation)
                        return
                    items = list(waiting)
                    waiting.clear()
                for item in items:
                    if self._stopping.is_set():
                        break
                    if isinstance(item, _Event):
                        self._run_event(item)
                    else:
                        self.parking.redrive(item, self._run_handlers)
        except _Stopping:
            pass
        except BaseException as exc:  # a dead-letter topic that does not answer, a bug
            log.error("trigger runtime: %s", exc)
            self._failure = exc
            self._stopping.set()
        with self._lock:
            self._running.discard(conversation)

    # -- running events -----------------------------------------------------------------

    def _run_event(self, item: _Event) -> None:
        event = item.event
        # Unparked conversations are the rule: no lock taken while none is parked.
        letter = self.parking.behind(event.conversation_id) if self.parking.parked else None
        # One conversation is in one partition, so offsets order its events.
        if letter is not None and event.offset >= letter.held.origin_offset:
            if event.offset > letter.held.origin_offset:
                self.parking.park(item.message, letter)
            # else: the failed event itself, read again after a restart (it is the letter)
            self.member.finish(event.partition, item.generation, event.offset)
            return
        # Not parked, or earlier than the failure (read again after a restart: it runs
        # again, at least once).
        failure = self._run_handlers(event)
        if failure is not None:
            self.parking.dead_letter(item.message, event, failure)
        self.member.finish(event.partition, item.generation, event.offset)

    def _run_handlers(
        self, event: RecordedEvent, after: str | None = None, redrive: int = 0
    ) -> Failure | None:
        """Run every handler of the event (from the one named `after` on), each with its
        retries; the first that fails for good stops the rest. `redrive`: which redrive of
        the event's letter this is (1 for the first; 0: not a redrive)."""
        reactions = (
            self._reactions.get(event.event_type, [])
            if after is None
            else self.agents.reactions_to(event.event_type, after)
        )
        for reaction in reactions:
            failure = self._run_handler(reaction, event, redrive)
            if failure is not None:
                return failure
        return None

    def _run_handler(
        self, reaction: Reaction, event: RecordedEvent, redrive: int = 0
    ) -> Failure | None:
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
        return Failure(reaction, error, self.agents.attempts)

    def _start_redrive(self, letter: LetterState) -> None:
        partition = letter.held.origin_partition
        owned = partition in self.member.owned() and letter.held.origin_topic == self.topic
        if owned and letter.conversation is not None:
            self._enqueue(letter.conversation, partition, Redrive(letter, letter.state))

    # -- rebalances ---------------------------------------------------------------------

    def _assigned(self, partitions: list[int], starts: dict[int, int]) -> None:
        """Park again the conversations of the partitions given that are parked, and
        resume their redrives and skips that did not finish."""
        for letter in self.parking.restore(set(partitions)):
            self._start_redrive(letter)
        log.info(
            "assigned %s; %d conversations parked", sorted(partitions), len(self.parking.parked)
        )

    def _settle(self, numbers: set[int]) -> None:
        """Partitions going away: the work of their conversations ends first."""
        while not self._stopping.is_set() and self._busy(numbers):
            time.sleep(_IDLE_WAIT)

    def _busy(self, numbers: set[int]) -> bool:
        with self._lock:
            return any(self._partition_of.get(c) in numbers for c in self._running)

    def _forget(self, numbers: set[int]) -> None:
        with self._lock:
            for conversation, partition in list(self._partition_of.items()):
                if partition in numbers and conversation not in self._running:
                    self._partition_of.pop(conversation)
                    self.parking.parked.pop(conversation, None)
                    self._queues.pop(conversation, None)

    # -- stopping -----------------------------------------------------------------------

    def _caught_up(self) -> bool:
        with self._lock:
            idle = not self._running
        return (
            idle
            and self._follower is not None
            and self._follower.at_end
            and not self.parking.redrives_under_way()
            and self.member.caught_up()
        )

    def _shut_down(self) -> None:
        self._stopping.set()
        self._pool.shutdown()
        try:
            self.member.close()
        finally:
            if self._follower is not None:
                self._follower.close()
            self.parking.close()
