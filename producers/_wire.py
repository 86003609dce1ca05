"""The idempotent Kafka producer under both recorders: encode, produce, never drop.

Two wires share the encoding:

- `EventWire` (no spool) hands each event straight to librdkafka. A recording call
  waits at most `max_block_ms` for room in the producer's local queue, and after such a
  wait ran out it does not wait again until the next check (every 1000 events), so a
  broker outage costs the agent at most one `max_block_ms` per 1000 events; events that
  found no room are reported (`on_error`, else `DeliveryFailed` from flush/close).
- `SpooledWire` (`spool_dir` set) appends each event to the crash-safe spool with one
  write(2) and never waits for Kafka; the shipper thread moves it on.

Either way an event too large for a Kafka record is kept whole in the claim-check store
(or, with the claim check off, reported with the limit named), a producer that died
(a fatal error) or got stuck (deliveries failing after the broker forgot it) is replaced
by a new one, and interpreter exit flushes what was not closed (bounded by
`exit_flush_timeout_ms`) and says on stderr what is left.
"""

from __future__ import annotations

import atexit
import functools
import logging
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from agentlog.claim_check import BlobStore
from agentlog.connection import anyone_listening, resolved
from agentlog.errors import (
    BrokerUnavailable,
    ConfigurationError,
    DeliveryFailed,
    SpoolError,
    UndeliveredEvent,
)
from agentlog.event_ids import RandomEventIds, canonical_event_id
from agentlog.kafka_config import MAX_MESSAGE_BYTES, producer_config
from agentlog.producers._kafka_errors import EVENT_REFUSED, kafka_error_in
from agentlog.serde import EventEncoder, claim_check_payload, micros_of
from agentlog.settings import Settings
from agentlog.topics import ensure_topics

if TYPE_CHECKING:  # the spool needs fcntl: imported where a spool is opened
    from agentlog.producers.spool import Spool

LOG = logging.getLogger("agentlog.producers")

ErrorCallback = Callable[[UndeliveredEvent], None]

_DEFAULT_MAX_MESSAGE_BYTES = MAX_MESSAGE_BYTES
_NO_CLAIM_CHECK = sys.maxsize
# How long replacing a dead producer may wait for it to hand back its events.
_SALVAGE_WAIT_S = 0.5


class _LocalQueueFull(Exception):
    """The producer's local queue is full; the encoded record waits in here."""

    def __init__(self, event_id: str, key: bytes, value: bytes, timestamp_ms: int) -> None:
        super().__init__("producer queue full")
        self.event_id = event_id
        self.key = key
        self.value = value
        self.timestamp_ms = timestamp_ms


# Recorders not closed yet: interpreter exit flushes them (strong references, so that a
# recorder dropped without close() is still flushed rather than silently destroyed).
_OPEN_WIRES: set[EventWire] = set()
_OPEN_WIRES_LOCK = threading.Lock()


@atexit.register
def _flush_open_wires_at_exit() -> None:
    with _OPEN_WIRES_LOCK:
        wires = list(_OPEN_WIRES)
    for wire in wires:
        try:
            wire.close_at_exit()
        except Exception:
            LOG.exception("flushing a recorder at exit failed")


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
        # Missing topics: created (the dev broker) or named in one line, now, rather than
        # a delivery failure once the producer has waited for their metadata.
        ensure_topics(self.settings, answer_within=1.0)
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
        self._passed_to_on_error = 0
        self._lock = threading.Lock()
        self._extra_config = dict(extra_producer_config or {})
        self._max_message_bytes = int(
            self._extra_config.get("message.max.bytes", _DEFAULT_MAX_MESSAGE_BYTES)
        )
        self._claim_threshold = (
            self.settings.claim_check_threshold_bytes
            if self.settings.claim_check
            else _NO_CLAIM_CHECK
        )
        self._blobs = BlobStore(
            self.settings.claim_check_store, self.settings.claim_check_max_bytes
        )
        self.wait_when_full = wait_when_full
        self.max_block = self.settings.max_block_ms / 1000
        self._since_poll = 0
        self._open()
        with _OPEN_WIRES_LOCK:
            _OPEN_WIRES.add(self)

    # -- the producer -------------------------------------------------------------------

    def _open(self) -> None:
        self._generation = 0
        # Delivery reports wait here until the call that served them has returned.
        self._inbox: list[tuple[int, KafkaError | None, Message]] = []
        self._fatal_error: KafkaError | None = None
        self._replace_wanted = False
        self._salvaging: int | None = None
        self._salvaged: list[tuple[bytes, bytes, int]] = []
        self._recoveries: list[str] = []
        # Replaced producers that still owed delivery reports: served until they are done.
        self._retired: list[Producer] = []
        self._shedding = False
        self._producer = self._new_producer()
        self._produce = self._producer.produce

    def _new_producer(self) -> Producer:
        self._generation += 1
        config = producer_config(self.settings)
        config["on_delivery"] = _inbox_callback(self._inbox, self._generation)
        config["error_cb"] = functools.partial(self._client_error, self._generation)
        config.update(self._extra_config)
        return Producer(config)

    def _source(self, agent: str | None) -> dict[str, str | None]:
        source = {"service": self._service, "agent": agent, "version": self._version}
        self._sources[agent] = source
        return source

    # -- recording ----------------------------------------------------------------------

    def send(
        self,
        conversation_id: str,
        payload: tuple[str, dict[str, Any]],
        agent: str | None,
        causation_id: str | None = None,
        trace_id: str | None = None,
        span_id: str | None = None,
        occurred_at: datetime | None = None,
        event_id: str | None = None,
    ) -> str:
        """Encode one event and hand it to the producer; returns its event id (the one
        given, checked and in canonical form, else a new random one).

        Never raises for Kafka's sake: what cannot be queued is reported. When the local
        queue is full: waits for room (bounded) if `wait_when_full`, else raises
        _LocalQueueFull (carrying the encoded record) so the caller decides how to wait
        before `resend`.
        """
        # The hot path: everything here runs for every event (the spooled wire's send
        # shares `_encode` instead, one call more).
        if conversation_id.__class__ is not str or not conversation_id:
            raise ConfigurationError(
                f"conversation_id must be a non-empty string, got {conversation_id!r}"
            )
        micros = self._clock_micros() if occurred_at is None else micros_of(occurred_at)
        event_id = self._new_event_id() if event_id is None else canonical_event_id(event_id)
        source = self._sources.get(agent) or self._source(agent)
        value = self._encode_fields(
            event_id, conversation_id, micros, source, trace_id, span_id, causation_id, payload
        )
        key = conversation_id.encode()
        if len(value) > self._claim_threshold:
            envelope = (event_id, conversation_id, micros, source, trace_id, span_id, causation_id)
            checked = self._check_in(value, key, envelope, payload[0])
            if checked is None:
                return event_id
            value = checked
        try:
            self._produce(self.topic, value, key, timestamp=micros // 1000)
        except BufferError:
            self._queue_full(_LocalQueueFull(event_id, key, value, micros // 1000))
        except KafkaException as exc:
            self._produce_refused(exc.args[0], key, value, micros // 1000)
        self._since_poll += 1
        if self._since_poll >= 1000:
            self._since_poll = 0
            self._check_producer()
        return event_id

    def _encode(
        self,
        conversation_id: str,
        payload: tuple[str, dict[str, Any]],
        agent: str | None,
        causation_id: str | None,
        trace_id: str | None,
        span_id: str | None,
        occurred_at: datetime | None,
        event_id: str | None = None,
    ) -> tuple[str, bytes, bytes | None, int]:
        """(event id, key, value or None if reported instead, timestamp ms)."""
        if conversation_id.__class__ is not str or not conversation_id:
            raise ConfigurationError(
                f"conversation_id must be a non-empty string, got {conversation_id!r}"
            )
        micros = self._clock_micros() if occurred_at is None else micros_of(occurred_at)
        event_id = self._new_event_id() if event_id is None else canonical_event_id(event_id)
        source = self._sources.get(agent) or self._source(agent)
        value: bytes | None = self._encode_fields(
            event_id, conversation_id, micros, source, trace_id, span_id, causation_id, payload
        )
        key = conversation_id.encode()
        assert value is not None
        if len(value) > self._claim_threshold:
            envelope = (event_id, conversation_id, micros, source, trace_id, span_id, causation_id)
            value = self._check_in(value, key, envelope, payload[0])
        return event_id, key, value, micros // 1000

    def _check_in(
        self, value: bytes, key: bytes, envelope: tuple[Any, ...], payload_name: str
    ) -> bytes | None:
        """Keep the encoded event in the claim-check store; returns the small event that
        stands for it on Kafka (same envelope), or None (reported) if the store refuses."""
        try:
            blob = self._blobs.put(value)
        except ConfigurationError as exc:
            self._report(UndeliveredEvent(self.topic, key, value, str(exc)))
            return None
        return self._encode_fields(*envelope, claim_check_payload(blob, payload_name))

    def _too_large(self, key: bytes, value: bytes) -> UndeliveredEvent:
        hint = (
            "lower AGENTLOG_CLAIM_CHECK_THRESHOLD_BYTES below it so the claim check keeps "
            "such events whole"
            if self.settings.claim_check
            else "turn the claim check on (AGENTLOG_CLAIM_CHECK=true) to keep it whole"
        )
        return UndeliveredEvent(
            self.topic,
            key,
            value,
            f"event of {len(key) + len(value)} bytes exceeds the producer's message.max.bytes "
            f"limit of {self._max_message_bytes} bytes; {hint}",
        )

    def _produce_refused(self, error: KafkaError, key: bytes, value: bytes, ts: int) -> None:
        if error.code() in EVENT_REFUSED:
            self._report(self._too_large(key, value))
            return
        if error.code() == KafkaError._FATAL or error.fatal():
            self._fatal_error = self._fatal_error or error
            self._replace_producer()
            try:
                self._produce(self.topic, value, key, timestamp=ts)
                return
            except (BufferError, KafkaException) as again:
                error = again.args[0] if isinstance(again, KafkaException) else error
        self._report(UndeliveredEvent(self.topic, key, value, error.str()))

    def _queue_full(self, full: _LocalQueueFull) -> None:
        if self._shedding:
            # The last wait ran out and no check has happened since: do not wait again.
            if not self.resend(full):
                self.give_up(full)
            return
        if not self.wait_when_full:
            raise full
        deadline = time.monotonic() + self.max_block
        while not self.resend(full):
            left = deadline - time.monotonic()
            if left <= 0:
                self.give_up(full)
                return
            self.poll(min(0.05, left))

    def resend(self, full: _LocalQueueFull) -> bool:
        """Retry a record refused for a full queue; False while it is still full."""
        try:
            self._produce(self.topic, full.value, full.key, timestamp=full.timestamp_ms)
        except BufferError:
            self.poll(0)
            return False
        except KafkaException as exc:
            self._produce_refused(exc.args[0], full.key, full.value, full.timestamp_ms)
        self._shedding = False
        return True

    def give_up(self, full: _LocalQueueFull) -> None:
        """Report a record that found no room in the local queue within max_block_ms."""
        self._shedding = True
        self._report(
            UndeliveredEvent(
                self.topic,
                full.key,
                full.value,
                f"the producer's local queue stayed full for {self.settings.max_block_ms} ms "
                f"(max_block_ms): Kafka at {self.bootstrap} is not taking events; set "
                "AGENTLOG_SPOOL_DIR to keep them on disk instead",
            )
        )

    # -- delivery reports ---------------------------------------------------------------

    def _report(self, failure: UndeliveredEvent) -> None:
        if self._on_error is not None:
            try:
                self._on_error(failure)
                self._passed_to_on_error += 1
                return
            except Exception:
                LOG.exception("on_error raised; the event is kept for flush() to raise")
        with self._lock:
            self._failures.append(failure)

    def _describe(
        self, error: KafkaError, key: bytes | None, value: bytes | None
    ) -> UndeliveredEvent:
        reason = error.str()
        if error.code() in EVENT_REFUSED:
            size = len(key or b"") + len(value or b"")
            reason = (
                f"the broker refused a record of {size} bytes as too large for the topic "
                f"{self.topic} (its max.message.bytes, or the broker's message.max.bytes): "
                f"{reason}"
            )
        return UndeliveredEvent(self.topic, key, value, reason)

    def _drain_reports(self) -> None:
        """Handle the delivery reports the producers' callbacks put in the inbox."""
        while self._inbox:
            reports = self._inbox[:]
            del self._inbox[: len(reports)]
            for generation, error, message in reports:
                self._take_report(generation, error, message)

    def _take_report(self, generation: int, error: KafkaError | None, message: Message) -> None:
        if error is None:
            return
        refused = error.code() in EVENT_REFUSED
        if generation == self._salvaging and not refused:
            # Every record this producer writes has a key and a value.
            self._salvaged.append(
                (message.key() or b"", message.value() or b"", message.timestamp()[1])
            )
            return
        self._report(self._describe(error, message.key(), message.value()))
        if generation == self._generation and not refused:
            # Timed out, fenced, forgotten by a restarted broker...: this producer may
            # never deliver again (librdkafka keeps retrying one the broker forgot).
            self._replace_wanted = True

    def _client_error(self, generation: int, error: KafkaError) -> None:
        if error.fatal() and generation == self._generation:
            self._fatal_error = error

    def poll(self, timeout: float) -> None:
        try:
            self._producer.poll(timeout)
        except Exception as exc:  # noqa: BLE001 - see _producer_failed
            self._producer_failed(exc)
        self._drain_reports()

    def _producer_failed(self, exc: Exception) -> None:
        """A producer call raised. confluent-kafka raises a fatal error from poll() or
        flush() (once, instead of calling error_cb), and when it does so while serving
        delivery reports the KafkaException arrives wrapped in a SystemError."""
        error = kafka_error_in(exc)
        if error is not None and (error.fatal() or error.code() == KafkaError._FATAL):
            self._fatal_error = self._fatal_error or error
        else:
            LOG.warning("the Kafka producer failed (%s); replacing it", exc)
            self._replace_wanted = True

    def _check_producer(self) -> None:
        """Serve delivery reports; replace a producer that died or got stuck."""
        self._shedding = False
        self.poll(0)
        self._serve_retired(0)
        if self._fatal_error is not None or self._replace_wanted:
            self._replace_producer()

    def _replace_producer(self) -> None:
        """A new producer takes over; the events the old one still held are produced on
        it, in their order, before any new event."""
        old, fatal = self._producer, self._fatal_error
        self._salvaging, self._salvaged = self._generation, []
        deadline = time.monotonic() + _SALVAGE_WAIT_S
        try:
            old.purge(in_queue=True, in_flight=True)
        except Exception:  # noqa: BLE001 - a dead producer may refuse; flush still serves
            pass
        while time.monotonic() < deadline:
            try:
                if not old.flush(max(0.0, deadline - time.monotonic())):
                    break
            except Exception as exc:  # noqa: BLE001 - raised once by a dead producer
                reason = kafka_error_in(exc)
                if reason is not None and reason.code() != KafkaError._FATAL:
                    fatal = reason  # what killed it, not produce()'s "Fatal error"
            finally:
                self._drain_reports()
        self._drain_reports()
        salvaged, self._salvaging = self._salvaged, None
        if len(old):
            self._retired.append(old)  # its last reports are served (and reported) later
        self._producer = self._new_producer()
        self._produce = self._producer.produce
        self._fatal_error, self._replace_wanted = None, False
        for key, value, timestamp in salvaged:
            try:
                self._produce(self.topic, value, key, timestamp=timestamp)
            except (BufferError, KafkaException) as exc:
                why_not = exc.args[0].str() if isinstance(exc, KafkaException) else "queue full"
                self._report(UndeliveredEvent(self.topic, key, value, why_not))
        why = f"a fatal error ({fatal.str()})" if fatal is not None else "failed deliveries"
        # Only events the old producer still held are sent again: say so only when there
        # were some (none sent again is not news, and "0 sent again" misleads).
        resent = (
            f"{len(salvaged)} event(s) it held were sent again on the new one (those already "
            "written may appear twice; consumers drop them by event id)"
            if salvaged
            else "it held no events"
        )
        LOG.warning("the Kafka producer was replaced after %s; %s", why, resent)
        if fatal is not None:
            self._recoveries.append(
                f"the producer hit a fatal error ({fatal.str()}); a new producer took over"
                + (
                    f" and {len(salvaged)} event(s) the old one held were sent again on it"
                    if salvaged
                    else ""
                )
            )

    def _serve_retired(self, timeout: float) -> None:
        for old in list(self._retired):
            try:
                old.flush(timeout)
            except Exception:  # noqa: BLE001 - a dead producer raises its error once
                pass
            self._drain_reports()
            if not len(old):
                self._retired.remove(old)

    # -- flush, close, exit -------------------------------------------------------------

    def _take_failures(self) -> list[UndeliveredEvent]:
        with self._lock:
            failures, self._failures = self._failures, []
        return failures

    def flush(self, timeout: float | None = None) -> None:
        """Wait for every queued event; raise DeliveryFailed for any the broker refused,
        BrokerUnavailable for a fatal producer error (recovered from) or for events still
        waiting when the time is up."""
        wait = timeout if timeout is not None else self.settings.delivery_timeout_ms / 1000 + 5
        deadline = time.monotonic() + wait
        self._check_producer()
        remaining = 0
        while True:
            try:
                remaining = self._producer.flush(max(0.0, deadline - time.monotonic()))
            except Exception as exc:  # noqa: BLE001 - see _producer_failed
                self._producer_failed(exc)
            self._drain_reports()
            if self._fatal_error is None and not self._replace_wanted:
                break
            self._replace_producer()  # then wait for what it took over
            if time.monotonic() >= deadline:
                remaining = len(self._producer)
                break
        self._serve_retired(max(0.0, deadline - time.monotonic()))
        remaining += sum(len(old) for old in self._retired)
        failures = self._take_failures()
        recoveries, self._recoveries = self._recoveries, []
        if failures:
            raise DeliveryFailed(failures)
        if recoveries:
            raise BrokerUnavailable(
                "; ".join(recoveries) + "; recording goes on (events already written may "
                "appear twice: consumers drop them by event id)"
            )
        if remaining:
            raise BrokerUnavailable(
                f"{remaining} event(s) still waiting for Kafka at {self.bootstrap} after "
                f"{wait:.0f}s; they stay queued: call flush() again or check the broker"
            )

    def close(self, timeout: float | None = None) -> None:
        self.flush(timeout)
        self._forget()

    def _forget(self) -> None:
        with _OPEN_WIRES_LOCK:
            _OPEN_WIRES.discard(self)

    def close_at_exit(self) -> None:
        """Interpreter exit: deliver what is queued within exit_flush_timeout_ms, then
        report the rest (to on_error, and in one line on stderr)."""
        timeout = self.settings.exit_flush_timeout_ms / 1000
        passed_before = self._passed_to_on_error
        deadline = time.monotonic() + timeout
        for producer in [self._producer, *self._retired]:
            try:
                if producer.flush(max(0.0, deadline - time.monotonic())):
                    # Handed back as failed deliveries: reported like any other.
                    producer.purge(in_queue=True, in_flight=True)
                    producer.flush(_SALVAGE_WAIT_S)
            except Exception as exc:  # noqa: BLE001 - exit goes on, and says what is left
                LOG.error("at exit, the Kafka producer failed: %s", exc)
            self._drain_reports()
        self._forget()
        passed = self._passed_to_on_error - passed_before
        lost = self._take_failures()
        left = sum(len(producer) for producer in [self._producer, *self._retired])
        if not (passed or lost or left):
            return
        fates = []
        if passed:
            fates.append(f"{passed} passed to on_error")
        if lost or left:
            fates.append(
                f"{len(lost) + left} lost (pass on_error to the recorder to keep them, or "
                "leave the spool on: AGENTLOG_SPOOL=true)"
            )
        _say(
            f"{passed + len(lost) + left} event(s) were not delivered to Kafka at "
            f"{self.bootstrap} (waited {timeout:g}s at interpreter exit): {', '.join(fates)}"
        )


class SpooledWire(EventWire):
    """Events go to the durable spool; the shipper thread takes them to Kafka."""

    def _open(self) -> None:
        # Here, not at the top: the spool needs POSIX file locking (fcntl), and only
        # recorders with a spool should depend on it.
        from agentlog.producers._shipper import Shipper
        from agentlog.producers.spool import Spool

        self._spool = self._open_spool(Spool)
        self._shipper = Shipper(
            self.settings, self._spool, self._shipping_producer, self._report, self._describe
        )
        self._shipper.start()
        self._closed = False

    def _open_spool(self, spool_class: type[Spool]) -> Spool:
        """`spool_dir` when set (one recorder holds it); else a free slot of
        `state_dir/spool` (`0`, `1`, ...: a spool has one recorder at a time): the first
        that holds events a recorder before left (this one ships them first), else the
        first free one."""
        options = {
            "max_bytes": self.settings.spool_max_bytes,
            "fsync_interval_ms": self.settings.spool_fsync_interval_ms,
        }
        if self.settings.spool_dir is not None:
            return spool_class(self.settings.spool_dir, **options)
        root = self.settings.state_dir / "spool"
        chosen: Spool | None = None
        busy: SpoolError | None = None
        for slot in range(_SPOOL_SLOTS):
            directory = root / str(slot)
            if chosen is not None and not directory.exists():
                break  # no slot past this one was ever used: none holds leftovers
            try:
                opened = spool_class(directory, **options)
            except SpoolError as exc:
                if "in use by another recorder" not in str(exc):
                    raise
                busy = exc
                continue
            if opened.backlog_bytes():  # a recorder before left events here: ship them
                if chosen is not None:
                    chosen.close()
                return opened
            if chosen is None:
                chosen = opened
            else:
                opened.close()
        if chosen is not None:
            return chosen
        raise SpoolError(
            f"all {_SPOOL_SLOTS} spools under {root} are in use ({busy}); set "
            "AGENTLOG_SPOOL_DIR for this recorder, or AGENTLOG_SPOOL=false"
        )

    def _shipping_producer(self, error_cb: Callable[[KafkaError], None]) -> Producer:
        config = producer_config(self.settings, report_successes=True)
        config["error_cb"] = error_cb
        config.update(self._extra_config)
        return Producer(config)

    def send(
        self,
        conversation_id: str,
        payload: tuple[str, dict[str, Any]],
        agent: str | None,
        causation_id: str | None = None,
        trace_id: str | None = None,
        span_id: str | None = None,
        occurred_at: datetime | None = None,
        event_id: str | None = None,
    ) -> str:
        """Encode one event and append it to the spool; never waits for Kafka."""
        event_id, key, value, timestamp = self._encode(
            conversation_id, payload, agent, causation_id, trace_id, span_id, occurred_at, event_id
        )
        if value is None:
            return event_id
        if len(key) + len(value) > self._max_message_bytes:
            self._report(self._too_large(key, value))
        elif not self._append(key, value, timestamp):
            self._report(
                UndeliveredEvent(
                    self.topic,
                    key,
                    value,
                    f"the spool at {self._spool.directory} is full "
                    f"({self.settings.spool_max_bytes} bytes, spool_max_bytes) while Kafka at "
                    f"{self.bootstrap} does not take events; the event was not kept",
                )
            )
        return event_id

    def _append(self, key: bytes, value: bytes, timestamp: int) -> bool:
        if self._closed:
            raise ConfigurationError("this recorder is closed; create a new one to record")
        try:
            return self._spool.append(key, value, timestamp)
        except SpoolError as exc:
            self._report(UndeliveredEvent(self.topic, key, value, str(exc)))
            return True

    def flush(self, timeout: float | None = None) -> None:
        """Wait until Kafka has every spooled event; raise DeliveryFailed for events it
        refused for good, BrokerUnavailable if the time ran out (the events stay in the
        spool and are shipped when Kafka takes them)."""
        wait = timeout if timeout is not None else self.settings.delivery_timeout_ms / 1000 + 5
        drained = self._spool.wait_drained(wait)
        failures = self._take_failures()
        if failures:
            raise DeliveryFailed(failures)
        if not drained:
            raise BrokerUnavailable(self._waiting(f"after {wait:.0f}s"))

    def _waiting(self, when: str) -> str:
        why = f" ({self._shipper.last_problem})" if self._shipper.last_problem else ""
        by = (
            "the next recorder started with this spool_dir"
            if self.settings.spool_dir is not None
            else f"the next recorder that opens a spool under {self.settings.state_dir}"
        )
        return (
            f"events ({self._spool.backlog_bytes()} bytes) still wait in the spool at "
            f"{self._spool.directory} for Kafka at {self.bootstrap}{why} {when}; they are "
            f"kept on disk and shipped when Kafka takes them, by this recorder or {by}"
        )

    def _drain_while_moving(self, wait: float) -> bool:
        """Wait up to `wait` seconds for Kafka to take the spooled events while a broker
        listens; once none does (no bootstrap address takes a connection within half a
        second), stop waiting: the events are safe on disk, and a broker that is down must
        not hold up leaving the recorder."""
        deadline = time.monotonic() + wait
        while True:
            if self._spool.wait_drained(0) or not anyone_listening(
                self.bootstrap or "", _FIRST_LOOK_S
            ):
                return self._spool.wait_drained(0)
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self._spool.wait_drained(min(1.0, left)):
                return True

    def close(self, timeout: float | None = None) -> None:
        """Ship what Kafka takes within `timeout` (default exit_flush_timeout_ms), then
        stop; events still spooled stay on disk (said on stderr). Raises DeliveryFailed
        for events Kafka refused for good, if there is no on_error."""
        if self._closed:
            return
        wait = timeout if timeout is not None else self.settings.exit_flush_timeout_ms / 1000
        started = time.monotonic()
        drained = self._drain_while_moving(wait)
        self._stop(drained)
        if not drained:
            waited = time.monotonic() - started
            _say(self._waiting(f"when the recorder closed (waited {waited:.1f}s)"))
        failures = self._take_failures()
        if failures:
            raise DeliveryFailed(failures)

    def _stop(self, drained: bool = True) -> None:
        self._closed = True
        # Nothing left to ship (or no broker to ship to): no reason to wait for the
        # shipper to end a connection attempt.
        self._shipper.stop(timeout=1.0 if drained else 0.0)
        problem = self._spool.close()
        if problem is not None:
            _say(f"closing the spool: {problem}")
        self._forget()

    def close_at_exit(self) -> None:
        if self._closed:
            return
        wait = self.settings.exit_flush_timeout_ms / 1000
        started = time.monotonic()
        drained = self._drain_while_moving(wait)
        self._stop(drained)
        if not drained:
            waited = time.monotonic() - started
            _say(self._waiting(f"at interpreter exit (waited {waited:.1f}s)"))
        lost = self._take_failures()
        if lost:
            _say(
                f"{len(lost)} event(s) Kafka refused for good are lost (first: "
                f"{lost[0].error}); pass on_error to the recorder to keep them"
            )


def _inbox_callback(
    inbox: list[tuple[int, KafkaError | None, Message]], generation: int
) -> Callable[[KafkaError | None, Message], None]:
    """A delivery callback that only files the report. confluent-kafka may call it while
    a fatal error it raises is pending, when the first call into its C code fails
    (SystemError); a list append still takes effect, so no report is lost, and the
    reports are read after poll()/flush() has returned."""

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        inbox.append((generation, error, message))

    return on_delivery


def _say(line: str) -> None:
    """One line on stderr, where a process without logging configured still shows it."""
    try:
        sys.stderr.write(f"agentlog: {line}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # stderr closed: nothing more can be said


# Leaving a spooled recorder: how long it waits before asking whether Kafka answers, and
# how long it waits for that answer.
_FIRST_LOOK_S = 0.5
# Recorders open at once under one state directory, each with a spool of its own.
_SPOOL_SLOTS = 64


def open_wire(settings: Settings | None, **options: Any) -> EventWire:
    """The spooled wire when a spool is configured, else the direct one."""
    chosen = resolved(settings or Settings())
    if chosen.spool or chosen.spool_dir is not None:
        return SpooledWire(chosen, **options)
    return EventWire(chosen, **options)
