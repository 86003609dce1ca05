"""The dead-letter topic: records that could not be applied, with where they came from.

Every dead letter carries a deterministic id, its origin (`topic/partition/offset`), in
the `agentlog.dead-letter-id` header: a record dead-lettered twice (a batch retried
after its transaction failed, a projector killed between sending and committing) has
the same id both times, so whatever counts dead letters counts distinct ids. Beside
agentlog's headers go the ones Kafka Connect's dead-letter queues write
(`__connect.errors.*`), so tools built for those read these.

The topic is also the one record of what became of each letter. Beside letters it holds
*parked records* (a later event of a conversation a trigger letter parked, header
`agentlog.parked-behind`) and *control records* (header `agentlog.dlq.action`: redriven,
skipped, purged, resolved, reopened; `agentlog.dead-letter-id` names the letter). Kafka
cannot delete one record, so every change of state is a record appended, keyed like the
letter (its partition, so it follows the letter in order). `DeadLetterFold` folds the
topic into letter states; `dead_letter_states(settings)` reads it once, to its end.

    open ──redriven──> redriven ──resolved──> resolved      (triggers: parked ones ran)
      │  ──skipped───> skipped  ──resolved──> resolved
      │  ──purged────> purged                               (hidden from `dlq list`)
      └──  redriven/skipped ──reopened──> open              (the redrive failed again)

A projection letter is done once redriven (its record is back on its topic). A control
record that does not fit the letter's state (a second redrive) changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

from confluent_kafka import KafkaError, Message, Producer

from agentlog.errors import BrokerUnavailable, ConfigurationError
from agentlog.kafka_config import dead_letter_producer_config
from agentlog.reader import partition_offset, read_partitions
from agentlog.settings import Settings

DEAD_LETTER_ID = "agentlog.dead-letter-id"
ORIGIN_TOPIC = "agentlog.origin.topic"
ORIGIN_PARTITION = "agentlog.origin.partition"
ORIGIN_OFFSET = "agentlog.origin.offset"
ORIGIN_TIMESTAMP = "agentlog.origin.timestamp"
ERROR = "agentlog.error"
ATTEMPTS = "agentlog.attempts"
DEAD_LETTERED_AT = "agentlog.dead-lettered-at"
CONSUMER_GROUP = "agentlog.consumer-group"
# projection | trigger (a letter written before there were kinds is a projection's).
CONSUMER_KIND = "agentlog.consumer-kind"
# The conversation a trigger letter parks.
CONVERSATION = "agentlog.conversation"
# The trigger handler that failed (agent/handler), so a redrive runs it and the later ones.
HANDLER = "agentlog.handler"
# On a parked record: the id of the letter it waits behind.
PARKED_BEHIND = "agentlog.parked-behind"
# On a control record: what happened to the letter it names.
ACTION = "agentlog.dlq.action"

PROJECTION = "projection"
TRIGGER = "trigger"
OPEN, REDRIVEN, SKIPPED, PURGED, RESOLVED, REOPENED = (
    "open",
    "redriven",
    "skipped",
    "purged",
    "resolved",
    "reopened",
)
ACTIONS = (REDRIVEN, SKIPPED, PURGED, RESOLVED, REOPENED)

CONNECT_TOPIC = "__connect.errors.topic"
CONNECT_PARTITION = "__connect.errors.partition"
CONNECT_OFFSET = "__connect.errors.offset"
CONNECT_EXCEPTION_CLASS = "__connect.errors.exception.class.name"
CONNECT_EXCEPTION_MESSAGE = "__connect.errors.exception.message"


def dead_letter_id(topic: str, partition: int, offset: int) -> str:
    """The id of the dead letter of the record at this origin."""
    return f"{topic}/{partition}/{offset}"


@dataclass(frozen=True)
class DeadLetter:
    """A record that could not be applied, and why."""

    record: Message
    error: str  # the whole reason, as agentlog.error
    attempts: int
    exception_class: str  # what failed: a decode error, or the handler's exception type
    exception_message: str
    kind: str = PROJECTION
    conversation: str | None = None  # for a trigger letter: the conversation it parks
    handler: str | None = None  # for a trigger letter: the handler that failed

    @property
    def id(self) -> str:
        return dead_letter_id(self.record.topic() or "", *partition_offset(self.record))


@dataclass
class Delivery:
    """What Kafka made of a round of dead letters."""

    acknowledged: list[DeadLetter]
    failed: list[tuple[DeadLetter, str]]  # (letter, why): refused, or not answered in time


class DeadLetters:
    """Sends original bytes and headers plus origin headers, and says which letters the
    dead-letter topic acknowledged within the time given."""

    def __init__(self, settings: Settings, group: str) -> None:
        self.topic = settings.dlq_topic
        self.group = group
        self._producer = Producer(dead_letter_producer_config(settings))

    def deliver(self, letters: Iterable[DeadLetter], timeout: float) -> Delivery:
        """Send the letters and wait up to `timeout` seconds for Kafka to take them all.
        Letters not acknowledged by then are withdrawn (purged from the producer), so
        none of them turns up later unrecorded."""
        outcome: dict[str, str | None] = {}
        sent = list(letters)

        def delivered(letter: DeadLetter) -> Callable[[KafkaError | None, Message], None]:
            def report(error: KafkaError | None, _: Message) -> None:
                outcome[letter.id] = None if error is None else error.str()

            return report

        for letter in sent:
            self._producer.produce(
                self.topic,
                letter.record.value(),
                letter.record.key(),
                headers=self.headers_of(letter),
                on_delivery=delivered(letter),
            )
        answered = self._await(outcome, len(sent), timeout)
        acknowledged, failed = [], []
        for letter in sent:
            error = answered.get(letter.id, f"no acknowledgement within {timeout:g}s")
            if error is None:
                acknowledged.append(letter)
            else:
                failed.append((letter, error))
        return Delivery(acknowledged, failed)

    def _await(
        self, outcome: dict[str, str | None], sent: int, timeout: float
    ) -> dict[str, str | None]:
        """Wait for `sent` delivery reports in `outcome`; withdraw what is unanswered."""
        deadline = time.monotonic() + timeout
        while len(outcome) < sent and time.monotonic() < deadline:
            self._producer.flush(max(0.0, min(0.5, deadline - time.monotonic())))
        answered = dict(outcome)
        if len(answered) < sent:
            self._producer.purge()
            self._producer.flush(0)  # serve the purged letters' reports
        return answered

    def _send_one(
        self,
        value: bytes | None,
        key: bytes | None,
        headers: list[tuple[str, str | bytes | None]],
        what: str,
        timeout: float,
        topic: str | None = None,
    ) -> None:
        """Send one record (to the dead-letter topic unless `topic` is given) and wait for
        Kafka to take it; BrokerUnavailable if it does not."""
        outcome: dict[str, str | None] = {}

        def report(error: KafkaError | None, _: Message) -> None:
            outcome[what] = None if error is None else error.str()

        self._producer.produce(topic or self.topic, value, key, headers=headers, on_delivery=report)
        error = self._await(outcome, 1, timeout).get(
            what, f"no acknowledgement within {timeout:g}s"
        )
        if error is not None:
            raise BrokerUnavailable(f"{self.topic} did not take {what}: {error}")

    def park(self, record: Message, behind: str, timeout: float) -> None:
        """Hold `record` (a later event of a parked conversation) on the dead-letter topic,
        behind the letter `behind`; returns once Kafka took it."""
        origin_partition, origin_offset = partition_offset(record)
        topic = (record.topic() or "").encode()
        headers = cast(list[tuple[str, str | bytes | None]], list(record.headers() or []))
        headers += [
            (PARKED_BEHIND, behind.encode()),
            (ORIGIN_TOPIC, topic),
            (ORIGIN_PARTITION, str(origin_partition).encode()),
            (ORIGIN_OFFSET, str(origin_offset).encode()),
            (ORIGIN_TIMESTAMP, str(record.timestamp()[1]).encode()),
            (CONSUMER_GROUP, self.group.encode()),
            (CONSUMER_KIND, TRIGGER.encode()),
        ]
        where = dead_letter_id(record.topic() or "", origin_partition, origin_offset)
        self._send_one(record.value(), record.key(), headers, f"parked record {where}", timeout)

    def control(
        self,
        letter: LetterState,
        action: str,
        timeout: float,
        *,
        error: str | None = None,
        exception_class: str | None = None,
    ) -> None:
        """Append a control record saying what became of `letter` (keyed like it, so it
        follows the letter and its parked records in order)."""
        if action not in ACTIONS:
            raise ValueError(f"unknown dead-letter action {action!r}")
        headers: list[tuple[str, str | bytes | None]] = [
            (ACTION, action.encode()),
            (DEAD_LETTER_ID, letter.id.encode()),
            (CONSUMER_GROUP, letter.group.encode()),
            (CONSUMER_KIND, letter.kind.encode()),
            (DEAD_LETTERED_AT, datetime.now(UTC).isoformat().encode()),
        ]
        if error is not None:
            headers.append((ERROR, error.encode()))
        if exception_class is not None:
            headers.append((CONNECT_EXCEPTION_CLASS, exception_class.encode()))
        self._send_one(None, letter.key, headers, f"the {action} record of {letter.id}", timeout)

    def send_back(self, letter: LetterState, timeout: float) -> None:
        """Produce the letter's original bytes, key and headers to the topic it came from
        (a projection redrive: same event id, so the projector applies it once)."""
        held = letter.held
        self._send_one(
            held.value,
            held.key,
            cast(list[tuple[str, str | bytes | None]], original_headers(held.headers)),
            f"the redrive of {letter.id}",
            timeout,
            topic=held.origin_topic,
        )

    def close(self, timeout: float = 10.0) -> None:
        self._producer.flush(timeout)

    def headers_of(self, letter: DeadLetter) -> list[tuple[str, str | bytes | None]]:
        record = letter.record
        origin_partition, origin_offset = partition_offset(record)
        topic = (record.topic() or "").encode()
        partition = str(origin_partition).encode()
        offset = str(origin_offset).encode()
        # A consumed record's headers are a list of (name, value) pairs.
        headers = cast(list[tuple[str, str | bytes | None]], list(record.headers() or []))
        headers += [
            (DEAD_LETTER_ID, letter.id.encode()),
            (ORIGIN_TOPIC, topic),
            (ORIGIN_PARTITION, partition),
            (ORIGIN_OFFSET, offset),
            (ORIGIN_TIMESTAMP, str(record.timestamp()[1]).encode()),
            (ERROR, letter.error.encode()),
            (ATTEMPTS, str(letter.attempts).encode()),
            (DEAD_LETTERED_AT, datetime.now(UTC).isoformat().encode()),
            (CONSUMER_GROUP, self.group.encode()),
            (CONNECT_TOPIC, topic),
            (CONNECT_PARTITION, partition),
            (CONNECT_OFFSET, offset),
            (CONNECT_EXCEPTION_CLASS, letter.exception_class.encode()),
            (CONNECT_EXCEPTION_MESSAGE, letter.exception_message.encode()),
            (CONSUMER_KIND, letter.kind.encode()),
        ]
        if letter.conversation is not None:
            headers.append((CONVERSATION, letter.conversation.encode()))
        if letter.handler is not None:
            headers.append((HANDLER, letter.handler.encode()))
        return headers


def dead_letters_of(settings: Settings, group: str) -> set[str]:
    """The distinct dead letters `group` wrote to the dead-letter topic (a letter sent
    twice, by a projector killed between sending and committing, counts once)."""
    states = dead_letter_states(settings)
    return {letter.id for (g, _), letter in states.letters.items() if g == group}


# -- the fold: what became of every letter ----------------------------------------------

Headers = list[tuple[str, bytes]]
# Headers the dead-letter topic adds; the rest are the original record's.
_ADDED_PREFIXES = ("__connect.errors.",)
_ADDED = {
    DEAD_LETTER_ID,
    ORIGIN_TOPIC,
    ORIGIN_PARTITION,
    ORIGIN_OFFSET,
    ORIGIN_TIMESTAMP,
    ERROR,
    ATTEMPTS,
    DEAD_LETTERED_AT,
    CONSUMER_GROUP,
    CONSUMER_KIND,
    CONVERSATION,
    HANDLER,
    PARKED_BEHIND,
    ACTION,
}


def headers_of(record: Message) -> Headers:
    """A record's headers as (name, bytes) pairs (a consumed record's are a list)."""
    pairs = cast(list[tuple[str, bytes | None]], list(record.headers() or []))
    return [(k, v if v is not None else b"") for k, v in pairs]


def original_headers(headers: Headers) -> Headers:
    """The headers the record had on its own topic (what a redrive sends back)."""
    return [(k, v) for k, v in headers if k not in _ADDED and not k.startswith(_ADDED_PREFIXES)]


def _text(headers: dict[str, bytes], name: str) -> str | None:
    value = headers.get(name)
    return value.decode(errors="replace") if isinstance(value, bytes) else None


def _number(headers: dict[str, bytes], name: str) -> int | None:
    text = _text(headers, name)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


@dataclass
class Held:
    """A record held on the dead-letter topic (a letter's or a parked one): its bytes and
    headers as they are there, and where it came from."""

    key: bytes | None
    value: bytes | None
    headers: Headers
    origin_topic: str
    origin_partition: int
    origin_offset: int
    origin_timestamp_ms: int | None
    dlq_partition: int
    dlq_offset: int


@dataclass
class LetterState:
    """One dead letter of one consumer group, and what became of it."""

    id: str
    group: str
    kind: str
    state: str
    held: Held
    error: str
    exception_class: str
    exception_message: str
    attempts: int | None
    dead_lettered_at: str | None
    conversation: str | None = None
    handler: str | None = None
    # Trigger letters: the conversation's later events, in their order on the log.
    parked: list[Held] = field(default_factory=list)
    # The actions applied, in order (a control record that did not fit is left out).
    history: list[str] = field(default_factory=list)

    @property
    def key(self) -> bytes | None:
        return self.held.key

    @property
    def parks_conversation(self) -> bool:
        """A trigger letter holds its conversation until it is resolved."""
        return (
            self.kind == TRIGGER
            and self.conversation is not None
            and self.state
            in (
                OPEN,
                REDRIVEN,
                SKIPPED,
            )
        )

    def add_parked(self, held: Held) -> None:
        """Keep a parked record once (a runtime killed before committing parks it again),
        in log order."""
        if any(p.origin_offset == held.origin_offset for p in self.parked):
            return
        self.parked.append(held)
        self.parked.sort(key=lambda p: p.origin_offset)


# Which actions a letter in a state takes; any other control record changes nothing.
_TRANSITIONS: dict[str, dict[str, str]] = {
    OPEN: {REDRIVEN: REDRIVEN, SKIPPED: SKIPPED, PURGED: PURGED},
    REDRIVEN: {RESOLVED: RESOLVED, REOPENED: OPEN, PURGED: PURGED},
    SKIPPED: {RESOLVED: RESOLVED, REOPENED: OPEN, PURGED: PURGED},
    RESOLVED: {PURGED: PURGED},
    PURGED: {},
}


class DeadLetterStates:
    """The dead-letter topic folded into letter states, per consumer group. Feed it the
    topic's records in order per partition (`add`); `dead_letter_states` does that for
    the whole topic."""

    def __init__(self) -> None:
        self.letters: dict[tuple[str, str], LetterState] = {}
        # Parked records whose letter was not seen (yet): by (group, letter id).
        self._waiting: dict[tuple[str, str], list[Held]] = {}
        # The next offset of each partition of the topic read so far.
        self.ends: dict[int, int] = {}

    def add(self, record: Message) -> LetterState | None:
        """Fold in one record of the topic; returns the letter it changed, if any."""
        # A record this process sent and folds in before reading it has no position yet.
        partition, offset = record.partition(), record.offset()
        if partition is None or offset is None or partition < 0:
            partition, offset = -1, -1
        else:
            self.ends[partition] = offset + 1
        headers = headers_of(record)
        named = dict(headers)
        group = _text(named, CONSUMER_GROUP) or ""
        action = _text(named, ACTION)
        if action is not None:
            return self._control(group, _text(named, DEAD_LETTER_ID) or "", action, named)
        held = Held(
            record.key(),
            record.value(),
            headers,
            _text(named, ORIGIN_TOPIC) or "",
            _number(named, ORIGIN_PARTITION) or 0,
            _number(named, ORIGIN_OFFSET) or 0,
            _number(named, ORIGIN_TIMESTAMP),
            partition,
            offset,
        )
        behind = _text(named, PARKED_BEHIND)
        if behind is not None:
            letter = self.letters.get((group, behind))
            if letter is None:
                self._waiting.setdefault((group, behind), []).append(held)
                return None
            letter.add_parked(held)
            return letter
        letter_id = _text(named, DEAD_LETTER_ID) or f"{record.topic()}/{partition}/{offset}"
        if (group, letter_id) in self.letters:
            return None  # sent twice (a consumer killed between sending and committing)
        letter = LetterState(
            id=letter_id,
            group=group,
            kind=_text(named, CONSUMER_KIND) or PROJECTION,
            state=OPEN,
            held=held,
            error=_text(named, ERROR) or "",
            exception_class=_text(named, CONNECT_EXCEPTION_CLASS) or "",
            exception_message=_text(named, CONNECT_EXCEPTION_MESSAGE) or "",
            attempts=_number(named, ATTEMPTS),
            dead_lettered_at=_text(named, DEAD_LETTERED_AT),
            conversation=_text(named, CONVERSATION),
            handler=_text(named, HANDLER),
        )
        self.letters[(group, letter_id)] = letter
        for waiting in self._waiting.pop((group, letter_id), []):
            letter.add_parked(waiting)
        return letter

    def _control(
        self, group: str, letter_id: str, action: str, named: dict[str, bytes]
    ) -> LetterState | None:
        letter = self.letters.get((group, letter_id))
        if letter is None:
            return None
        applied = self.apply(
            letter,
            action,
            error=_text(named, ERROR),
            exception_class=_text(named, CONNECT_EXCEPTION_CLASS),
        )
        return letter if applied else None

    def apply(
        self,
        letter: LetterState,
        action: str,
        *,
        error: str | None = None,
        exception_class: str | None = None,
    ) -> bool:
        """Move the letter on by `action`, if its state takes it (a second redrive does
        not: it was applied once); says whether it did."""
        after = _TRANSITIONS.get(letter.state, {}).get(action)
        if after is None:
            return False
        letter.state = after
        letter.history.append(action)
        if action == REOPENED:
            letter.error = error or letter.error
            letter.exception_class = exception_class or letter.exception_class
        return True

    # -- questions ----------------------------------------------------------------------

    def visible(self, group: str | None = None) -> list[LetterState]:
        """Letters not purged (of one group, if given), oldest first."""
        return sorted(
            (
                letter
                for letter in self.letters.values()
                if letter.state != PURGED and (group is None or letter.group == group)
            ),
            key=lambda letter: (letter.dead_lettered_at or "", letter.id),
        )

    def find(self, letter_id: str, group: str | None = None) -> LetterState:
        """The letter with this id (of `group`, when several groups have one); a
        ConfigurationError that says what exists otherwise."""
        found = [
            letter
            for (g, i), letter in self.letters.items()
            if i == letter_id and (group is None or g == group)
        ]
        if not found:
            where = f" of group {group}" if group else ""
            raise ConfigurationError(
                f"no dead letter {letter_id!r}{where} (ids are topic/partition/offset; "
                "`agentlog dlq list` shows them)"
            )
        if len(found) > 1:
            groups = ", ".join(sorted(letter.group for letter in found))
            raise ConfigurationError(
                f"dead letter {letter_id!r} belongs to several groups ({groups}): pass --group"
            )
        return found[0]

    def open_by_group(self) -> dict[str, int]:
        """The DLQ depth: letters not yet dealt with (open, or a redrive under way), per
        group."""
        depth: dict[str, int] = {}
        for letter in self.letters.values():
            if letter.state in (OPEN, REDRIVEN, SKIPPED) and not (
                letter.kind == PROJECTION and letter.state == REDRIVEN
            ):
                depth[letter.group] = depth.get(letter.group, 0) + 1
        return depth

    def parked_conversations(self) -> dict[str, set[str]]:
        """The conversations trigger letters hold, per group."""
        parked: dict[str, set[str]] = {}
        for letter in self.letters.values():
            if letter.parks_conversation and letter.conversation is not None:
                parked.setdefault(letter.group, set()).add(letter.conversation)
        return parked


def control_note(record: Message) -> str | None:
    """What a control record of the dead-letter topic says, None for any other record."""
    named = dict(headers_of(record))
    action = _text(named, ACTION)
    if action is None:
        return None
    letter = _text(named, DEAD_LETTER_ID) or "?"
    group = _text(named, CONSUMER_GROUP) or "?"
    return f"dead letter {letter} of group {group}: {action}"


def dead_letter_states(settings: Settings, *, idle_timeout: float = 30.0) -> DeadLetterStates:
    """The whole dead-letter topic, read once to its end and folded."""
    states = DeadLetterStates()
    for record in read_partitions(settings, settings.dlq_topic, idle_timeout=idle_timeout):
        states.add(record)
    return states
