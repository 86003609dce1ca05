"""The trigger runtime's follower of the dead-letter topic: it folds in what the topic got
since the runtime started (letters, parked records, control records) and names the
redrives and skips of the runtime's group that were just asked for.
"""

from __future__ import annotations

import threading

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from agentlog.consumers.dead_letters import (
    DEAD_LETTER_ID,
    OPEN,
    REDRIVEN,
    SKIPPED,
    DeadLetterStates,
    LetterState,
    headers_of,
)
from agentlog.errors import BrokerUnavailable
from agentlog.outage import close_within
from agentlog.reader import partition_offset, reading_consumer
from agentlog.settings import Settings
from agentlog.topics import partition_count


class ControlFollower:
    """Reads the dead-letter topic on from where `states` (read at start) ended."""

    def __init__(self, settings: Settings, group: str, states: DeadLetterStates) -> None:
        self.settings = settings
        self.group = group
        self.states = states
        topic = settings.dlq_topic
        count = partition_count(settings, topic)
        self.consumer: Consumer = reading_consumer(settings)
        self.consumer.assign(
            [TopicPartition(topic, p, states.ends.get(p, OFFSET_BEGINNING)) for p in range(count)]
        )
        # Partitions not yet read to their end.
        self._pending = set(range(count))

    @property
    def at_end(self) -> bool:
        return not self._pending

    def read(self, lock: threading.RLock) -> list[LetterState]:
        """Fold in what arrived (without waiting); the letters of this group whose redrive
        or skip was asked for just now."""
        started: list[LetterState] = []
        for record in self.consumer.consume(100, 0):
            error = record.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    self._pending.discard(partition_offset(record)[0])
                elif error.fatal():
                    raise BrokerUnavailable(f"reading the dead-letter topic: {error.str()}")
                continue
            self._pending.add(partition_offset(record)[0])
            with lock:
                before = self._state_of(record)
                letter = self.states.add(record)
                if letter is None or letter.group != self.group or before == letter.state:
                    continue
                if letter.state in (REDRIVEN, SKIPPED) and before == OPEN:
                    started.append(letter)
        return started

    def _state_of(self, record: Message) -> str | None:
        letter_id = dict(headers_of(record)).get(DEAD_LETTER_ID)
        if letter_id is None:
            return None
        letter = self.states.letters.get((self.group, letter_id.decode()))
        return letter.state if letter is not None else None

    def close(self) -> None:
        close_within(self.consumer, f"agents of group {self.group} (dead letters)")
