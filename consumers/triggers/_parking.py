"""Parking: a handler that fails for good turns its event into a dead letter (kind
`trigger`) and parks its conversation behind it; the conversation's later events go to
the dead-letter topic as parked records, in order, instead of running. A redrive re-runs
the failed handler, then the parked events in order, then writes `resolved` and unparks;
a skip does the same without the failed event. A redrive that fails again writes
`reopened` (the letter is open again, the conversation stays parked); a parked event that
fails for good during a redrive becomes the letter the rest is parked behind.

Which conversations are parked is rebuilt from the dead-letter topic (`DeadLetterStates`)
when their partitions are assigned, so a parked conversation stays parked across
restarts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from confluent_kafka import Message

from agentlog.consumers.dead_letters import (
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
    headers_of,
    original_headers,
)
from agentlog.consumers.triggers._agents import Reaction
from agentlog.errors import BrokerUnavailable
from agentlog.reader import partition_offset
from agentlog.recorded import Position, RecordedEvent
from agentlog.recorded import event_of as recorded_event_of
from agentlog.serde import decode
from agentlog.settings import Settings

if TYPE_CHECKING:
    from agentlog.consumers.triggers._runtime import TriggerProgress

log = logging.getLogger(__name__)


@dataclass
class Failure:
    """A handler that still raised after its attempts."""

    reaction: Reaction
    error: BaseException
    attempts: int


@dataclass
class Redrive:
    """A redrive or skip to carry out, in the conversation's queue."""

    letter: LetterState
    action: str


# Runs every handler of an event (from the one named `after` on; `redrive`: which redrive
# of the event's letter this is, 0 if none): the failure that stopped them, or None.
RunHandlers = Callable[[RecordedEvent, str | None, int], Failure | None]


class Parking:
    """The parked conversations of one trigger group's owned partitions, and its writes to
    the dead-letter topic. `lock` and `progress` are the runtime's."""

    def __init__(
        self,
        settings: Settings,
        group: str,
        topic: str,
        lock: threading.RLock,
        progress: TriggerProgress,
    ) -> None:
        self.settings = settings
        self.group = group
        self.topic = topic
        self._lock = lock
        self._progress = progress
        self.letters = DeadLetters(settings, group)
        self._writing = threading.Lock()  # one round of dead-letter writes at a time
        self.states = DeadLetterStates()
        # Conversation -> the letter it is parked behind (conversations of owned partitions).
        self.parked: dict[str, LetterState] = {}

    # -- what is parked -------------------------------------------------------------------

    def behind(self, conversation: str) -> LetterState | None:
        """The letter `conversation` is parked behind, if any."""
        with self._lock:
            return self.parked.get(conversation)

    def redrives_under_way(self) -> bool:
        with self._lock:
            return any(letter.state != OPEN for letter in self.parked.values())

    def restore(self, partitions: set[int]) -> list[LetterState]:
        """Park again the conversations of `partitions` (just assigned) that the
        dead-letter topic says are parked; the letters whose redrive or skip did not
        finish, to resume."""
        resume: list[LetterState] = []
        with self._lock:
            letters = sorted(
                (
                    letter
                    for letter in self.states.letters.values()
                    if letter.group == self.group
                    and letter.parks_conversation
                    and letter.held.origin_topic == self.topic
                    and letter.held.origin_partition in partitions
                ),
                key=lambda letter: letter.held.origin_offset,
            )
            for letter in letters:
                assert letter.conversation is not None
                # The oldest letter of a conversation is the one it waits behind.
                self.parked.setdefault(letter.conversation, letter)
                if letter.state != OPEN:
                    resume.append(letter)  # a redrive or skip that did not finish
        return resume

    # -- writing --------------------------------------------------------------------------

    def deliver(self, letter: DeadLetter) -> None:
        """Keep `letter` on the dead-letter topic (acknowledged, or raise)."""
        with self._writing:
            delivery = self.letters.deliver([letter], self.settings.dead_letter_timeout_s)
        if delivery.failed:
            raise BrokerUnavailable(
                f"{self.letters.topic} did not take the dead letter of {letter.id} "
                f"({delivery.failed[0][1]}); its event stays uncommitted"
            )
        with self._lock:
            self._progress.dead_lettered += 1

    def dead_letter(self, message: Message, event: RecordedEvent, failure: Failure) -> None:
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
        self.deliver(letter)
        # Fold in what was sent now: the follower's copy of it will be a repeat.
        record = Message(
            topic=self.letters.topic,
            key=message.key(),
            value=message.value(),
            headers=self.letters.headers_of(letter),
        )
        with self._lock:
            state = self.states.add(record) or self.states.letters[(self.group, letter.id)]
            self.parked[event.conversation_id] = state

    def park(self, message: Message, letter: LetterState) -> None:
        """Hold `message` on the dead-letter topic behind `letter`."""
        with self._writing:
            self.letters.park(message, letter.id, self.settings.dead_letter_timeout_s)
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
        with self._writing:
            self.letters.control(letter, action, self.settings.dead_letter_timeout_s, error=error)
        with self._lock:
            self.states.apply(letter, action, error=error)

    # -- redrive and skip -----------------------------------------------------------------

    def redrive(self, item: Redrive, run_handlers: RunHandlers) -> None:
        """Carry out a redrive (the failed handler, then the parked events) or a skip (the
        parked events), in the conversation's queue."""
        letter = item.letter
        conversation = letter.conversation or ""
        if item.action == REDRIVEN:
            event = event_of(letter.held)
            # Counted from the letter's history: a redrive resumed after a crash is the same.
            redrive = letter.history.count(REDRIVEN)
            failure = run_handlers(event, letter.handler, redrive)
            if failure is not None:
                error = f"{failure.reaction.name} raised {type(failure.error).__name__}: "
                self._control(letter, REOPENED, error + str(failure.error))
                with self._lock:
                    self._progress.redrives_failed += 1
                return
        with self._lock:
            parked = list(letter.parked)
        for index, held in enumerate(parked):
            event = event_of(held)
            failure = run_handlers(event, None, 0)
            if failure is not None:
                # The rest waits behind this one now.
                self.dead_letter(held_record(held), event, failure)
                with self._lock:
                    successor = self.parked[conversation]
                for later in parked[index + 1 :]:
                    self.park(held_record(later), successor)
                self._control(letter, RESOLVED)
                self._count_done(item.action)
                return
        self._control(letter, RESOLVED)
        with self._lock:
            if self.parked.get(conversation) is letter:
                del self.parked[conversation]
        self._count_done(item.action)
        log.info("%s %s: %d parked events ran", item.action, letter.id, len(parked))

    def _count_done(self, action: str) -> None:
        with self._lock:
            if action == SKIPPED:
                self._progress.skipped += 1
            else:
                self._progress.redriven += 1

    def close(self) -> None:
        self.letters.close()


def event_of(held: Held) -> RecordedEvent:
    """The event a record held on the dead-letter topic was on its own topic."""
    return recorded_event_of(
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
