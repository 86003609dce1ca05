"""The projection runner: a consumer group member that folds events into a sink with
exactly-once effects.

Per batch, one sink transaction stores the state changes *and* the offsets applied
per partition (checked against the offsets this member started from, so a zombie
or a rebalance can never apply a range twice), and the event ids applied (so a
duplicate event changes nothing). On every assignment the runner seeks to the
offsets stored in the sink; Kafka's committed offsets are written only as advice for
monitoring tools. Records that cannot be decoded, or whose handler fails every
attempt, go to the dead-letter topic before the batch commits.

Two stages overlap. The main thread consumes, decodes and folds a batch while the
previous batch's transaction runs on a writer thread (the database works without the
GIL). Only one transaction is in flight at a time, and a batch is folded on the rows
the one before it produced. The fold assumes that none of its events was applied
before, as is almost always true; the transaction checks it, and if one was, it
rolls back and the runner re-reads from the stored offsets, looking the applied ids
up before folding for a while ("careful" batches).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from agentlog.consumers.dead_letters import DeadLetters
from agentlog.consumers.fold import Batch, Folder
from agentlog.consumers.projection import Position, Projection, RecordedEvent, recorded_event
from agentlog.consumers.sinks.base import Fenced, Sink
from agentlog.errors import AgentlogError, BrokerUnavailable, DecodeError, SinkError
from agentlog.kafka_config import group_consumer_config
from agentlog.reader import partition_offset
from agentlog.serde import decode
from agentlog.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_GROUP = "agentlog-projector"
# After a batch turned out to hold an event applied before, this many batches look
# applied ids up before folding (a producer that repeated one event often repeats more).
CAREFUL_BATCHES = 20


class _AppliedBefore(AgentlogError):
    """The batch holds an event applied by an earlier batch: fold it again carefully."""


@dataclass
class Progress:
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    batches: int = 0
    fenced: int = 0
    lag: int | None = None
    first_batch_at: float | None = None
    last_batch_at: float | None = None

    @property
    def rate(self) -> float:
        """Events applied per second since the first batch (group joining excluded)."""
        if self.first_batch_at is None or self.last_batch_at is None:
            return 0.0
        return self.applied / max(self.last_batch_at - self.first_batch_at, 1e-9)


ProgressCallback = Callable[[Progress], None]


class ProjectionRunner:
    def __init__(
        self,
        settings: Settings,
        sink: Sink,
        projections: Iterable[Projection],
        *,
        group: str = DEFAULT_GROUP,
        batch_size: int = 10_000,
        handler_attempts: int = 3,
        cache_rows: int = 200_000,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.settings = settings
        self.topic = settings.events_topic
        self.group = group
        self.sink = sink
        self.folder = Folder(projections, handler_attempts=handler_attempts, cache_rows=cache_rows)
        self.tables = self.folder.tables
        self.batch_size = batch_size
        self.on_progress = on_progress
        self.progress = Progress()
        self.dead_letters = DeadLetters(settings, group)
        # partition -> next offset stored in the sink (None: nothing stored yet)
        self.positions: dict[int, int | None] = {}
        self.ends_seen: set[int] = set()
        # partition -> its end (high watermark) when first read: what `--once` catches up to
        self.targets: dict[int, int] = {}
        self.assigned_once = False
        self.careful = 0
        self._stop = False
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="agentlog-sink")
        self._pending: tuple[Batch, Future[None]] | None = None
        self.consumer = Consumer(group_consumer_config(settings, group))
        sink.prepare(self.tables.values(), group)

    # -- group membership -------------------------------------------------------------

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._finish_pending(reseek=False)
        stored = self.sink.stored_offsets(self.group, self.topic)
        for tp in partitions:
            self.positions[tp.partition] = stored.get(tp.partition)
            tp.offset = stored.get(tp.partition, OFFSET_BEGINNING)
            self.ends_seen.discard(tp.partition)
        consumer.assign(partitions)
        self.folder.forget()
        self.assigned_once = True
        log.info("assigned %s", {tp.partition: tp.offset for tp in partitions})

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._finish_pending(reseek=False)
        for tp in partitions:
            self.positions.pop(tp.partition, None)
            self.ends_seen.discard(tp.partition)
        self.folder.forget()
        consumer.unassign()

    def stop(self) -> None:
        """Ask the runner to stop after the batch in hand (safe from a signal handler)."""
        self._stop = True

    # -- the loop ---------------------------------------------------------------------

    def run(self, *, once: bool = False) -> Progress:
        """Apply events until stopped; with `once`, until caught up with the partition
        ends (the ends seen when each partition was first read)."""
        self.consumer.subscribe(
            [self.topic], on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._revoked
        )
        last_report = 0.0
        # Process-wide tuning is the caller's choice: see tune_process_for_throughput().
        try:
            while not self._stop:
                messages = self.consumer.consume(self.batch_size, 0.5)
                records = self._records_of(messages)
                if records:
                    if self.progress.first_batch_at is None:
                        self.progress.first_batch_at = time.monotonic()
                    self._apply(self._decoded(records), records)
                else:
                    self._finish_pending()
                now = time.monotonic()
                if self.on_progress and now - last_report >= 1.0:
                    last_report = now
                    self.progress.lag = self._lag()
                    self.on_progress(self.progress)
                if once and self._caught_up(self._positions_after_pending()):
                    if not self._finish_pending() and self._caught_up(self.positions):
                        break
        finally:
            try:
                self._finish_pending(reseek=False)
            finally:
                self._writer.shutdown()
                self.progress.lag = self._lag()
                self.consumer.close()
        return self.progress

    def _records_of(self, messages: list[Message]) -> list[Message]:
        records = []
        for message in messages:
            error = message.error()
            if error is None:
                partition = message.partition()
                if partition in self.positions:
                    self.ends_seen.discard(partition)
                    records.append(message)
                    if partition not in self.targets:
                        self._note_target(partition)
            elif error.code() == KafkaError._PARTITION_EOF:
                self.ends_seen.add(partition_offset(message)[0])
            elif error.fatal():
                raise BrokerUnavailable(f"consumer failed: {error.str()}")
            else:
                log.warning("consumer: %s", error.str())
        return records

    def _note_target(self, partition: int) -> None:
        _, high = self.consumer.get_watermark_offsets(
            TopicPartition(self.topic, partition), cached=True
        )
        if high >= 0:
            self.targets[partition] = high

    def _caught_up(self, positions: dict[int, int | None]) -> bool:
        """Every owned partition reached its end, or the end it had when first read
        (producers that never pause cannot keep a batch job running)."""
        return self.assigned_once and all(
            p in self.ends_seen or (p in self.targets and (position or 0) >= self.targets[p])
            for p, position in positions.items()
        )

    def _positions_after_pending(self) -> dict[int, int | None]:
        """The positions once the transaction in flight commits."""
        if self._pending is None:
            return self.positions
        batch, _ = self._pending
        return {p: batch.ends.get(p, position) for p, position in self.positions.items()}

    def _lag(self) -> int | None:
        total = 0
        for partition, position in self.positions.items():
            _, high = self.consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), cached=True
            )
            if high < 0:
                return None
            total += max(0, high - (position or 0))
        return total

    # -- one batch --------------------------------------------------------------------

    def _decoded(self, messages: list[Message]) -> Batch:
        events: list[RecordedEvent] = []
        dead: list[tuple[Position, str, int]] = []
        ends: dict[int, int] = {}
        topic = self.topic
        for message in messages:
            partition = message.partition()
            offset = message.offset()
            assert partition is not None and offset is not None  # a record has both
            if partition not in ends:
                self._check_not_rewound(partition, offset)
            ends[partition] = offset + 1
            kind, stamp = message.timestamp()
            position = Position(topic, partition, offset, stamp if kind else None)
            try:
                record = decode(message.value(), topic=topic, partition=partition, offset=offset)
                events.append(recorded_event(record, position))
            except DecodeError as exc:
                dead.append((position, str(exc), 1))
        return Batch(events, dead, ends)

    def _apply(self, batch: Batch, messages: list[Message]) -> None:
        """Fold the batch (overlapping the transaction in flight, if any), then hand it to
        the writer once that transaction has committed."""
        if self.careful:
            self.careful -= 1
            if self._finish_pending():  # what it applied must be visible to the look-up
                return
            skip = self.sink.applied_among(self.group, [e.event_id for e in batch.events])
        else:
            skip = set()
        self.folder.fold(batch, skip, self.sink.load)
        if self._finish_pending():
            return  # folded on rows that were never stored: re-read instead
        moves = {p: (self.positions.get(p), end) for p, end in batch.ends.items()}
        self._pending = (batch, self._writer.submit(self._store, batch, moves, messages))

    def _store(
        self, batch: Batch, moves: dict[int, tuple[int | None, int]], messages: list[Message]
    ) -> None:
        """The batch's sink transaction, on the writer thread."""
        with self.sink.transaction(self.group, self.topic) as tx:
            tx.claim(moves)
            if tx.mark_applied(batch.applied) != len(batch.applied):
                raise _AppliedBefore()
            for name, rows in batch.changed.items():
                tx.upsert(self.tables[name], rows)
            if batch.dead:
                # A dead letter carries the original record; the fold knows its position.
                at = {(m.partition(), m.offset()): m for m in messages}
                for position, error, attempts in batch.dead:
                    self.dead_letters.send(at[position.partition, position.offset], error, attempts)
                self.dead_letters.flush()

    def _finish_pending(self, *, reseek: bool = True) -> bool:
        """Wait for the transaction in flight and account for it. True if it stored
        nothing (fenced, or it held an event applied before): the batches folded on top
        of it are void, and every owned partition is read again from the offsets in the
        sink (unless the caller is about to reassign them anyway)."""
        if self._pending is None:
            return False
        batch, future = self._pending
        self._pending = None
        try:
            future.result()
        except (Fenced, _AppliedBefore) as exc:
            if isinstance(exc, Fenced):
                log.warning("%s; re-reading from the stored offsets", exc)
                self.progress.fenced += 1
            else:
                log.info("a batch holds events applied before; folding it again carefully")
                self.careful = CAREFUL_BATCHES
            self.folder.forget()
            if reseek:
                self._reseek(list(self.positions))
            return True
        except BaseException:
            self.folder.forget()
            raise
        self.positions.update(batch.ends)
        self.consumer.commit(
            offsets=[TopicPartition(self.topic, p, o) for p, o in batch.ends.items()],
            asynchronous=True,
        )
        self.progress.applied += len(batch.applied)
        self.progress.duplicates += batch.duplicates
        self.progress.dead_lettered += len(batch.dead)
        self.progress.batches += 1
        self.progress.last_batch_at = time.monotonic()
        return False

    def _check_not_rewound(self, partition: int, offset: int) -> None:
        stored = self.positions.get(partition)
        if stored is not None and offset < stored:
            raise SinkError(
                f"{self.topic}[{partition}] starts again at offset {offset}, below the offset "
                f"{stored} already applied by group {self.group}: the topic was recreated (a "
                "restarted dev broker?); project into a new sink or under a new --group"
            )

    def _reseek(self, partitions: Iterable[int]) -> None:
        stored = self.sink.stored_offsets(self.group, self.topic)
        for partition in partitions:
            if partition in self.positions:
                self.positions[partition] = stored.get(partition)
                self.ends_seen.discard(partition)
                self.consumer.seek(
                    TopicPartition(self.topic, partition, stored.get(partition, OFFSET_BEGINNING))
                )
