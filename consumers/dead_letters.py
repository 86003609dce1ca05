"""The dead-letter topic: records that could not be applied, with where they came from."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from confluent_kafka import KafkaError, Message, Producer

from agentlog.errors import BrokerUnavailable
from agentlog.kafka_config import producer_config
from agentlog.settings import Settings

ORIGIN_TOPIC = "agentlog.origin.topic"
ORIGIN_PARTITION = "agentlog.origin.partition"
ORIGIN_OFFSET = "agentlog.origin.offset"
ORIGIN_TIMESTAMP = "agentlog.origin.timestamp"
ERROR = "agentlog.error"
ATTEMPTS = "agentlog.attempts"
DEAD_LETTERED_AT = "agentlog.dead-lettered-at"
CONSUMER_GROUP = "agentlog.consumer-group"


class DeadLetters:
    """Sends original bytes and headers plus origin headers; `flush` raises unless every
    dead letter was acknowledged, so the caller never moves past a record it lost."""

    def __init__(self, settings: Settings, group: str) -> None:
        self.topic = settings.dlq_topic
        self.group = group
        config = producer_config(settings)
        config["on_delivery"] = self._delivered
        self._producer = Producer(config)
        self._errors: list[str] = []

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._errors.append(error.str())

    def send(self, message: Message, error: str, attempts: int) -> None:
        # A consumed record's headers are a list of (name, value) pairs.
        headers = cast(list[tuple[str, str | bytes | None]], list(message.headers() or []))
        headers += [
            (ORIGIN_TOPIC, (message.topic() or "").encode()),
            (ORIGIN_PARTITION, str(message.partition()).encode()),
            (ORIGIN_OFFSET, str(message.offset()).encode()),
            (ORIGIN_TIMESTAMP, str(message.timestamp()[1]).encode()),
            (ERROR, error.encode()),
            (ATTEMPTS, str(attempts).encode()),
            (DEAD_LETTERED_AT, datetime.now(UTC).isoformat().encode()),
            (CONSUMER_GROUP, self.group.encode()),
        ]
        self._producer.produce(self.topic, message.value(), message.key(), headers=headers)

    def flush(self, timeout: float = 60) -> None:
        remaining = self._producer.flush(timeout)
        errors, self._errors = self._errors, []
        if errors or remaining:
            raise BrokerUnavailable(
                f"dead letters were not acknowledged by {self.topic} "
                f"({errors[0] if errors else f'{remaining} still queued'}); "
                "the batch is not committed and will be retried"
            )
