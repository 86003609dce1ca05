"""The dead-letter topic: records that could not be applied, with where they came from.

Every dead letter carries a deterministic id, its origin (`topic/partition/offset`), in
the `agentlog.dead-letter-id` header: a record dead-lettered twice (a batch retried
after its transaction failed, a projector killed between sending and committing) has
the same id both times, so whatever counts dead letters counts distinct ids. Beside
agentlog's headers go the ones Kafka Connect's dead-letter queues write
(`__connect.errors.*`), so tools built for those read these.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from confluent_kafka import KafkaError, Message, Producer

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
                headers=self._headers(letter),
                on_delivery=delivered(letter),
            )
        deadline = time.monotonic() + timeout
        while len(outcome) < len(sent) and time.monotonic() < deadline:
            self._producer.flush(max(0.0, min(0.5, deadline - time.monotonic())))
        answered = dict(outcome)
        if len(answered) < len(sent):
            self._producer.purge()
            self._producer.flush(0)  # serve the purged letters' reports
        acknowledged, failed = [], []
        for letter in sent:
            error = answered.get(letter.id, f"no acknowledgement within {timeout:g}s")
            if error is None:
                acknowledged.append(letter)
            else:
                failed.append((letter, error))
        return Delivery(acknowledged, failed)

    def _headers(self, letter: DeadLetter) -> list[tuple[str, str | bytes | None]]:
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
        ]
        return headers


def dead_letters_of(settings: Settings, group: str) -> set[str]:
    """The distinct dead letters `group` wrote to the dead-letter topic (a letter sent
    twice, by a projector killed between sending and committing, counts once)."""
    found: set[str] = set()
    for record in read_partitions(settings, settings.dlq_topic):
        headers = dict(record.headers() or [])
        if headers.get(CONSUMER_GROUP) == group.encode():
            letter = headers.get(DEAD_LETTER_ID)
            found.add(letter.decode() if isinstance(letter, bytes) else f"{record.offset()}")
    return found
