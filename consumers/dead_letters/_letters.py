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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from confluent_kafka import KafkaError, Message, Producer

from agentlog.consumers.dead_letters._headers import (
    ACTION,
    ACTIONS,
    ATTEMPTS,
    CONNECT_EXCEPTION_CLASS,
    CONNECT_EXCEPTION_MESSAGE,
    CONNECT_OFFSET,
    CONNECT_PARTITION,
    CONNECT_TOPIC,
    CONSUMER_GROUP,
    CONSUMER_KIND,
    CONVERSATION,
    DEAD_LETTER_ID,
    DEAD_LETTERED_AT,
    ERROR,
    HANDLER,
    ORIGIN_OFFSET,
    ORIGIN_PARTITION,
    ORIGIN_TIMESTAMP,
    ORIGIN_TOPIC,
    PARKED_BEHIND,
    PROJECTION,
    TRIGGER,
    dead_letter_id,
    original_headers,
)
from agentlog.consumers.dead_letters._states import LetterState
from agentlog.errors import BrokerUnavailable
from agentlog.kafka_config import dead_letter_producer_config
from agentlog.reader import partition_offset
from agentlog.settings import Settings


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
