"""The spool's shipper: a background thread that moves spooled events to Kafka, in order.

It reads a chunk from the spool, announces it (`Spool.announce`: where the chunk ends
and where each partition's log stood before it), produces it with one idempotent
producer, waits until Kafka has acknowledged every record, and only then forgets the
chunk (`Spool.commit`). While the broker is away the producer keeps retrying the same
chunk (librdkafka, up to `delivery_timeout_ms`), so records that reached the log before
an outage are deduplicated by Kafka itself when the broker returns.

When a chunk cannot finish (its delivery timed out, the producer died of a fatal error or
was fenced, the recording process was killed), the next attempt starts with a new
producer and first looks on the topic, from the announced offsets on, for the event ids
of that chunk: the records already there are not sent again.

Duplicates are therefore possible only when that look-up cannot settle it: a record of
the unfinished chunk that reaches the log after the look-up (a request of the replaced
producer still queued in the broker), or more than RECONCILE_SCAN_LIMIT records written
to the partitions by others since the chunk was announced, or a position file lost in a
machine crash. Consumers drop such duplicates by event id.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from agentlog.errors import AgentlogError, BrokerUnavailable, TopicError, UndeliveredEvent
from agentlog.producers._kafka_errors import EVENT_REFUSED, kafka_error_in
from agentlog.producers.spool import Position, ShippingIntent, Spool, SpooledRecord
from agentlog.reader import partition_ends, read_partitions
from agentlog.serde import event_id_of
from agentlog.settings import Settings

LOG = logging.getLogger("agentlog.producers.shipper")

CHUNK_RECORDS = 5000
CHUNK_BYTES = 4 << 20
RECONCILE_SCAN_LIMIT = 2_000_000
_FIRST_RETRY_S = 0.2
_LONGEST_RETRY_S = 5.0
_DEAD_PRODUCER_WAIT_S = 0.5

ProducerFactory = Callable[[Callable[[KafkaError], None]], Producer]
Describe = Callable[[KafkaError, bytes | None, bytes | None], UndeliveredEvent]


class Shipper:
    """Owns the producer of a spooled recorder; every Kafka call happens on its thread."""

    def __init__(
        self,
        settings: Settings,
        spool: Spool,
        new_producer: ProducerFactory,
        refused: Callable[[UndeliveredEvent], None],
        describe: Describe,
    ) -> None:
        self._settings = settings
        self._topic = settings.events_topic
        self._spool = spool
        self._new_producer = new_producer
        self._refused = refused
        self._describe = describe
        self._producer: Producer | None = None
        self._fatal: KafkaError | None = None
        self._cursor = spool.committed
        self._floors: dict[int, int] = {}
        # Records of an unfinished chunk found on the topic, or refused for good.
        self._skip: set[Position] = set()
        self._stop = threading.Event()
        self._stop_deadline = float("inf")
        self.last_problem: str | None = None
        self._thread = threading.Thread(target=self._run, name="agentlog-spool-shipper")
        self._thread.daemon = True  # exit must not wait for it: atexit stops it, bounded

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop within about `timeout` seconds; an unacknowledged chunk stays announced."""
        self._stop_deadline = time.monotonic() + timeout
        self._stop.set()
        self._thread.join(timeout + 1)

    # -- the loop -----------------------------------------------------------------------

    def _run(self) -> None:
        retry_in = _FIRST_RETRY_S
        while not self._stop.is_set():
            try:
                if self._producer is None:
                    self._connect()
                self._spool.sync_if_due()
                chunk = self._spool.read(
                    self._cursor, max_records=CHUNK_RECORDS, max_bytes=CHUNK_BYTES
                )
                if not chunk:
                    self._spool.wait_for_records(self._cursor, 0.1)
                    continue
                if self._ship(chunk):
                    if self.last_problem is not None:
                        LOG.warning("spool %s: shipping again", self._spool.directory)
                    self.last_problem = None
                    retry_in = _FIRST_RETRY_S
                    continue
            except (AgentlogError, KafkaException) as exc:
                self._note_problem(str(exc))
            except Exception as exc:  # never die quietly: the spool would only grow
                LOG.exception("spool %s: shipping failed", self._spool.directory)
                self._note_problem(f"{type(exc).__name__}: {exc}")
            self._drop_producer()
            self._stop.wait(retry_in)
            retry_in = min(retry_in * 2, _LONGEST_RETRY_S)
        self._drop_producer()

    def _note_problem(self, problem: str) -> None:
        if self.last_problem is None:
            LOG.warning(
                "spool %s: cannot ship to Kafka (%s); events wait in the spool, retrying",
                self._spool.directory,
                problem,
            )
        self.last_problem = problem

    # -- connecting ---------------------------------------------------------------------

    def _connect(self) -> None:
        self._fatal = None
        producer = self._new_producer(self._client_error)
        try:
            metadata = producer.list_topics(self._topic, timeout=5)
        except KafkaException as exc:
            raise BrokerUnavailable(
                f"Kafka at {self._settings.bootstrap_servers} does not answer ({exc.args[0].str()})"
            ) from None
        topic = metadata.topics.get(self._topic)
        if topic is None or topic.error is not None:
            raise TopicError(f"topic {self._topic} does not exist on the broker")
        intent = self._spool.intent
        ends = partition_ends(self._settings, self._topic, timeout=30)
        if intent is not None:
            self._reconcile(intent, ends)
        # Whatever is shipped from now on lands after these offsets.
        self._floors = ends
        self._producer = producer

    def _reconcile(self, intent: ShippingIntent, ends: dict[int, int]) -> None:
        """Find on the topic the records of an unfinished chunk that did arrive."""
        doubtful = self._spool.read(
            self._spool.committed,
            max_records=1 << 30,
            max_bytes=1 << 62,
            until=intent.end,
        )
        wanted: dict[str, Position] = {}
        for record in doubtful:
            event_id = event_id_of(record.value)
            if event_id is not None and record.position not in self._skip:
                wanted[event_id] = record.position
        if not wanted:
            return
        # A log that is now shorter than its announced offset was lost: read it all.
        starts = {p: (f if f <= ends.get(p, 0) else 0) for p, f in intent.floors.items()}
        starts.update({p: 0 for p in ends if p not in starts})
        scanned = found = 0
        for message in read_partitions(self._settings, self._topic, start_offsets=starts):
            position = wanted.pop(event_id_of(message.value() or b"") or "", None)
            if position is not None:
                self._skip.add(position)
                found += 1
                if not wanted:
                    break
            scanned += 1
            if scanned >= RECONCILE_SCAN_LIMIT:
                LOG.warning(
                    "spool %s: stopped looking for %d event(s) of an unfinished chunk after "
                    "%d records; they are sent again and may be duplicates",
                    self._spool.directory,
                    len(wanted),
                    scanned,
                )
                break
        LOG.info(
            "spool %s: %d of %d event(s) of an unfinished chunk were already on Kafka",
            self._spool.directory,
            found,
            found + len(wanted),
        )

    def _client_error(self, error: KafkaError) -> None:
        # Often not called for fatal errors: confluent-kafka raises them from poll().
        if error.fatal():
            self._fatal = error

    def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            producer.purge(in_queue=True, in_flight=True)
            producer.poll(0)
        except KafkaException:
            pass  # a producer that died of a fatal error may refuse even this

    # -- one chunk ----------------------------------------------------------------------

    def _ship(self, chunk: list[SpooledRecord]) -> bool:
        """Send a chunk and wait for Kafka's answer on every record; True when all of it is
        on Kafka (or refused for good and reported) and forgotten by the spool."""
        producer = self._producer
        assert producer is not None
        end = chunk[-1].end
        records = [r for r in chunk if r.position not in self._skip]
        floors = dict(self._floors)
        unfinished = self._spool.intent
        if unfinished is not None:
            # Sending part of an unfinished chunk again: whoever looks for it later must
            # look from where the first attempt may have landed.
            for partition, offset in unfinished.floors.items():
                floors[partition] = min(offset, floors.get(partition, offset))
        reach = max(end, unfinished.end) if unfinished is not None else end
        self._spool.announce(ShippingIntent(reach, floors))
        # Per record: None (no answer yet), a KafkaError, or the delivered Message.
        answers: list[Any] = [None] * len(records)
        waiting = [len(records)]

        def answered(index: int, error: KafkaError | None, message: Message) -> None:
            # Only stores (see agentlog.producers._wire._inbox_callback): confluent-kafka
            # may call this with a fatal error pending; the answer is read afterwards.
            answers[index] = message if error is None else error
            waiting[0] -= 1

        produce, topic = producer.produce, self._topic
        for index, record in enumerate(records):
            while True:
                try:
                    produce(
                        topic,
                        record.value,
                        record.key,
                        timestamp=record.timestamp_ms,
                        on_delivery=functools.partial(answered, index),
                    )
                    break
                except BufferError:
                    self._poll(producer, 0.05)
                except KafkaException as exc:
                    if exc.args[0].code() not in EVENT_REFUSED:
                        raise
                    answers[index] = exc.args[0]
                    waiting[0] -= 1
                    break
        while waiting[0] > 0 and self._fatal is None:
            if self._stop.is_set() and time.monotonic() > self._stop_deadline:
                return False
            self._poll(producer, 0.1)
        if self._fatal is not None:
            # A dead producer still hands back its reports (the one that killed it among
            # them): take them before judging the chunk.
            deadline = time.monotonic() + _DEAD_PRODUCER_WAIT_S
            while waiting[0] > 0 and time.monotonic() < deadline:
                self._poll(producer, 0.1)
        return self._settle(records, answers, end)

    def _poll(self, producer: Producer, timeout: float) -> None:
        try:
            producer.poll(timeout)
        except Exception as exc:  # noqa: BLE001 - the fatal error, maybe wrapped
            self._fatal = self._fatal or kafka_error_in(exc) or KafkaError(KafkaError._FATAL)

    def _settle(self, records: list[SpooledRecord], answers: list[Any], end: Position) -> bool:
        """Take in the answers: forget the chunk if every record is on Kafka or refused for
        good (reported); else raise, leaving the unanswered in doubt for the next try."""
        unfinished: KafkaError | None = self._fatal
        for record, answer in zip(records, answers, strict=True):
            if answer is None:
                continue  # no answer: only when the producer died (self._fatal)
            if isinstance(answer, KafkaError):
                if answer.code() in EVENT_REFUSED:
                    self._skip.add(record.position)
                    self._refused(self._describe(answer, record.key, record.value))
                else:
                    unfinished = unfinished or answer
            else:
                partition, offset = answer.partition(), answer.offset()
                if offset + 1 > self._floors.get(partition, 0):
                    self._floors[partition] = offset + 1
        if self._fatal is not None:
            raise BrokerUnavailable(f"the producer hit a fatal error: {self._fatal.str()}")
        if unfinished is not None:
            raise BrokerUnavailable(f"delivery failed: {unfinished.str()}")
        self._cursor = self._spool.commit(end)
        # Past an emptied segment positions start again: nothing refused is left there.
        self._skip = {p for p in self._skip if p >= end and p >= self._cursor}
        return True
