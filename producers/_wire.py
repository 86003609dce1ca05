"""The idempotent Kafka producer under both recorders: encode, produce, never drop."""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from agentlog.connection import resolved
from agentlog.errors import (
    BrokerUnavailable,
    ConfigurationError,
    DeliveryFailed,
    UndeliveredEvent,
)
from agentlog.kafka_config import producer_config
from agentlog.serde import EventEncoder, micros_of
from agentlog.settings import Settings

ErrorCallback = Callable[[UndeliveredEvent], None]


def random_uuid4s(count: int) -> list[str]:
    """`count` random (version 4) UUID strings from one read of the OS random source."""
    pool = int.from_bytes(os.urandom(16 * count))
    # Set version 4 and the RFC 4122 variant in every 16-byte id at once.
    pool = (pool & _clear_mask(count)) | _set_bits(count)
    h = pool.to_bytes(16 * count).hex()
    return [
        f"{h[i : i + 8]}-{h[i + 8 : i + 12]}-{h[i + 12 : i + 16]}-"
        f"{h[i + 16 : i + 20]}-{h[i + 20 : i + 32]}"
        for i in range(0, 32 * count, 32)
    ]


@functools.cache
def _clear_mask(count: int) -> int:
    one = ((1 << 128) - 1) ^ (0xF << 76) ^ (0x3 << 62)
    return int.from_bytes(one.to_bytes(16) * count)


@functools.cache
def _set_bits(count: int) -> int:
    return int.from_bytes(((0x4 << 76) | (0x2 << 62)).to_bytes(16) * count)


class RandomEventIds:
    """Event ids drawn in blocks: a third of the cost of str(uuid.uuid4()) each."""

    def __init__(self, block: int = 1024) -> None:
        self._block = block
        self._ready: list[str] = []

    def __call__(self) -> str:
        if not self._ready:
            self._ready = random_uuid4s(self._block)
        return self._ready.pop()


class LocalQueueFull(Exception):
    """The producer's local queue is full; the encoded record waits in here."""

    def __init__(self, event_id: str, key: bytes, value: bytes, timestamp_ms: int) -> None:
        super().__init__("producer queue full")
        self.event_id = event_id
        self.key = key
        self.value = value
        self.timestamp_ms = timestamp_ms


class EventWire:
    """Encodes envelopes and produces them keyed by conversation id."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        service: str,
        version: str | None = None,
        on_error: ErrorCallback | None = None,
        clock_micros: Callable[[], int] | None = None,
        new_event_id: Callable[[], str] | None = None,
        extra_producer_config: dict[str, Any] | None = None,
        wait_when_full: bool = True,
    ) -> None:
        self.settings = resolved(settings or Settings())
        self.bootstrap = self.settings.bootstrap_servers
        self.topic = self.settings.events_topic
        self._service = service
        self._version = version
        # Never changed once made: the encoder memoizes each one's bytes by identity.
        self._sources: dict[str | None, dict[str, str | None]] = {}
        self._encode_fields = EventEncoder().encode_fields
        self._clock_micros = clock_micros or (lambda: time.time_ns() // 1000)
        self._new_event_id = new_event_id or RandomEventIds()
        self._on_error = on_error
        self._failures: list[UndeliveredEvent] = []
        self._fatal: KafkaError | None = None
        self._lock = threading.Lock()
        config = producer_config(self.settings)
        config["on_delivery"] = self._delivered
        config["error_cb"] = self._client_error
        config.update(extra_producer_config or {})
        self._producer = Producer(config)
        self._produce = self._producer.produce
        self.wait_when_full = wait_when_full
        self._since_poll = 0

    def _source(self, agent: str | None) -> dict[str, str | None]:
        source = {"service": self._service, "agent": agent, "version": self._version}
        self._sources[agent] = source
        return source

    def send(
        self,
        conversation_id: str,
        payload: tuple[str, dict[str, Any]],
        agent: str | None,
        causation_id: str | None = None,
        trace_id: str | None = None,
        span_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> str:
        """Encode one event and hand it to the producer; returns its event id.

        When the producer's local queue is full: waits for room if `wait_when_full`,
        else raises LocalQueueFull (carrying the encoded record) so the caller decides
        how to wait before `resend`.
        """
        if conversation_id.__class__ is not str or not conversation_id:
            raise ConfigurationError(
                f"conversation_id must be a non-empty string, got {conversation_id!r}"
            )
        if self._fatal is not None:
            self._raise_fatal()
        micros = self._clock_micros() if occurred_at is None else micros_of(occurred_at)
        event_id = self._new_event_id()
        value = self._encode_fields(
            event_id,
            conversation_id,
            micros,
            self._sources.get(agent) or self._source(agent),
            trace_id,
            span_id,
            causation_id,
            payload,
        )
        key = conversation_id.encode()
        try:
            self._produce(self.topic, value, key, timestamp=micros // 1000)
        except BufferError:
            full = LocalQueueFull(event_id, key, value, micros // 1000)
            if not self.wait_when_full:
                raise full from None
            while not self.resend(full):
                self._producer.poll(0.05)
        self._since_poll += 1
        if self._since_poll >= 1000:
            self._since_poll = 0
            self._producer.poll(0)
        return event_id

    def resend(self, full: LocalQueueFull) -> bool:
        """Retry a record refused for a full queue; False while it is still full."""
        if self._fatal is not None:
            self._raise_fatal()
        try:
            self._producer.produce(self.topic, full.value, full.key, timestamp=full.timestamp_ms)
        except BufferError:
            self._producer.poll(0)
            return False
        return True

    def _raise_fatal(self) -> None:
        assert self._fatal is not None
        raise BrokerUnavailable(
            f"the producer hit a fatal error and cannot continue: {self._fatal.str()}; "
            "create a new recorder"
        )

    def poll(self, timeout: float) -> None:
        self._producer.poll(timeout)

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            return
        topic = message.topic() or self.topic
        failure = UndeliveredEvent(topic, message.key(), message.value(), error.str())
        if self._on_error is not None:
            self._on_error(failure)
        else:
            with self._lock:
                self._failures.append(failure)

    def _client_error(self, error: KafkaError) -> None:
        if error.fatal():
            self._fatal = error

    def flush(self, timeout: float | None = None) -> None:
        """Wait for every queued event; raise DeliveryFailed for any the broker refused."""
        wait = timeout if timeout is not None else self.settings.delivery_timeout_ms / 1000 + 5
        remaining = self._producer.flush(wait)
        with self._lock:
            failures, self._failures = self._failures, []
        if failures:
            raise DeliveryFailed(failures)
        if remaining:
            raise BrokerUnavailable(
                f"{remaining} event(s) still waiting for Kafka at {self.bootstrap} after "
                f"{wait:.0f}s; they stay queued: call flush() again or check the broker"
            )
