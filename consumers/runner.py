"""The projection runner: a consumer group member that folds events into a sink with
exactly-once effects.

Per batch, one sink transaction stores the state changes *and* the offsets applied
per partition (checked against the offsets this member started from, so a zombie
or a rebalance can never apply a range twice), and the event ids applied (so a
duplicate event changes nothing). On every assignment the runner seeks to the
offsets stored in the sink; Kafka's committed offsets are written only as advice for
monitoring tools. Records that cannot be decoded, or whose handler fails every
attempt, go to the dead-letter topic before the batch commits.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from agentlog.consumers.dead_letters import DeadLetters
from agentlog.consumers.projection import (
    Key,
    Projection,
    RecordedEvent,
    Row,
    State,
    Table,
    all_tables,
)
from agentlog.consumers.sinks.base import Fenced, Sink, SinkTransaction
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from agentlog.errors import BrokerUnavailable, DecodeError, SinkError
from agentlog.events import EVENT_TYPE_BY_RECORD_NAME
from agentlog.serde import decode
from agentlog.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_GROUP = "agentlog-projector"


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
        bootstrap: str,
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
        self.projections = list(projections)
        self.tables = all_tables(self.projections)
        self.handlers: dict[str, list[Callable[[RecordedEvent, State], None]]] = {}
        for projection in self.projections:
            for event_type, methods in projection.handlers.items():
                self.handlers.setdefault(event_type, []).extend(methods)
        self.batch_size = batch_size
        self.handler_attempts = handler_attempts
        self.on_progress = on_progress
        self.progress = Progress()
        self.dead_letters = DeadLetters(settings, bootstrap, group)
        # partition -> next offset stored in the sink (None: nothing stored yet)
        self.positions: dict[int, int | None] = {}
        self.ends_seen: set[int] = set()
        # partition -> its end (high watermark) when first read: what `--once` catches up to
        self.targets: dict[int, int] = {}
        # Committed rows of the partitions this member owns. Safe to reuse: another
        # writer of those rows must first move the partition's offsets, which fences us
        # (and clears this) before we could commit anything built on a stale row.
        self.cache: dict[str, dict[Key, Row | None]] = {name: {} for name in self.tables}
        self.cache_rows = cache_rows
        self.assigned_once = False
        self._stop = False
        config = settings.client_config(bootstrap)
        config.update(
            {
                "group.id": group,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": True,
                "session.timeout.ms": settings.session_timeout_ms,
                "heartbeat.interval.ms": max(500, settings.session_timeout_ms // 6),
                "isolation.level": "read_committed",
            }
        )
        self.consumer = Consumer(config)
        sink.prepare(self.tables.values(), group)

    # -- group membership -------------------------------------------------------------

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        stored = self.sink.stored_offsets(self.group, self.topic)
        for tp in partitions:
            self.positions[tp.partition] = stored.get(tp.partition)
            tp.offset = stored.get(tp.partition, OFFSET_BEGINNING)
            self.ends_seen.discard(tp.partition)
        consumer.assign(partitions)
        self._forget_cache()
        self.assigned_once = True
        log.info("assigned %s", {tp.partition: tp.offset for tp in partitions})

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.positions.pop(tp.partition, None)
            self.ends_seen.discard(tp.partition)
        self._forget_cache()
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
        # A batch keeps thousands of decoded events alive at once, and the collector's
        # default gen-0 threshold (700) would then rescan them over and over: a third of
        # the runner's time. Collect less often while running; restored afterwards.
        thresholds = gc.get_threshold()
        gc.set_threshold(100_000, 50, 100)
        try:
            while not self._stop:
                messages = self.consumer.consume(self.batch_size, 0.5)
                records = self._records_of(messages)
                if records:
                    if self.progress.first_batch_at is None:
                        self.progress.first_batch_at = time.monotonic()
                    self._apply(records)
                    self.progress.last_batch_at = time.monotonic()
                now = time.monotonic()
                if self.on_progress and now - last_report >= 1.0:
                    last_report = now
                    self.progress.lag = self._lag()
                    self.on_progress(self.progress)
                if once and self._caught_up():
                    break
        finally:
            gc.set_threshold(*thresholds)
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
                self.ends_seen.add(message.partition())
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

    def _caught_up(self) -> bool:
        """Every owned partition reached its end, or the end it had when first read
        (producers that never pause cannot keep a batch job running)."""
        return self.assigned_once and all(
            p in self.ends_seen or (p in self.targets and (position or 0) >= self.targets[p])
            for p, position in self.positions.items()
        )

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

    def _decode(self, message: Message) -> RecordedEvent:
        record = decode(
            message.value(),
            topic=self.topic,
            partition=message.partition(),
            offset=message.offset(),
        )
        name, body = record["payload"]
        return RecordedEvent(
            record["event_id"],
            record["conversation_id"],
            record["occurred_at"],
            EVENT_TYPE_BY_RECORD_NAME[name],
            body,
            record["source"],
            record["causation_id"],
            record["trace_id"],
            record["span_id"],
            self.topic,
            message.partition(),
            message.offset(),
        )

    def _apply(self, messages: list[Message]) -> None:
        events: list[tuple[RecordedEvent, Message]] = []
        dead: list[tuple[Message, str, int]] = []
        ends: dict[int, int] = {}
        for message in messages:
            partition = message.partition()
            if partition not in ends:
                self._check_not_rewound(partition, message.offset())
            ends[partition] = message.offset() + 1
            try:
                events.append((self._decode(message), message))
            except DecodeError as exc:
                dead.append((message, str(exc), 1))
        try:
            with self.sink.transaction(self.group, self.topic) as tx:
                tx.claim({p: (self.positions.get(p), end) for p, end in ends.items()})
                applied, duplicates, rows = self._fold(tx, events, dead)
                if dead:
                    for message, error, attempts in dead:
                        self.dead_letters.send(message, error, attempts)
                    self.dead_letters.flush()
        except Fenced as exc:
            log.warning("%s; re-reading from the stored offsets", exc)
            self.progress.fenced += 1
            self._reseek(ends)
            return
        self.positions.update(ends)
        self._remember(rows)
        self.consumer.commit(
            offsets=[TopicPartition(self.topic, p, o) for p, o in ends.items()], asynchronous=True
        )
        self.progress.applied += applied
        self.progress.duplicates += duplicates
        self.progress.dead_lettered += len(dead)
        self.progress.batches += 1

    def _check_not_rewound(self, partition: int, offset: int) -> None:
        stored = self.positions.get(partition)
        if stored is not None and offset < stored:
            raise SinkError(
                f"{self.topic}[{partition}] starts again at offset {offset}, below the offset "
                f"{stored} already applied by group {self.group}: the topic was recreated (a "
                "restarted dev broker?); project into a new sink or under a new --group"
            )

    def _fold(
        self,
        tx: SinkTransaction,
        events: list[tuple[RecordedEvent, Message]],
        dead: list[tuple[Message, str, int]],
    ) -> tuple[int, int, dict[str, dict[Key, Row | None]]]:
        """Apply the batch's new events; returns (applied, duplicates skipped, the rows as
        they will be once the transaction commits)."""
        unique: dict[str, tuple[RecordedEvent, Message]] = {}
        for event, message in events:
            unique.setdefault(event.event_id, (event, message))
        fresh = tx.mark_applied([e for e, _ in unique.values()])
        to_apply = [(e, m) for e, m in unique.values() if e.event_id in fresh]
        base = self._prefetch(tx, [e for e, _ in to_apply])

        def load_one(table: Table, key: Key) -> Row | None:  # a row no prefetch foresaw
            return tx.load(table, [key]).get(key)

        changed = self._fold_all(to_apply, base, load_one)
        failed: list[tuple[RecordedEvent, Message, Exception]] = []
        if changed is None:
            changed, failed = self._fold_each(to_apply, base, load_one)
        if failed:
            tx.forget_applied([event.event_id for event, _, _ in failed])
            for _, message, error in failed:
                reason = f"handler failed: {type(error).__name__}: {error}"
                dead.append((message, reason, self.handler_attempts))
        for name, table_rows in changed.items():
            if table_rows:
                tx.upsert(self.tables[name], list(table_rows.values()))
                base[name].update(table_rows)
        return len(to_apply) - len(failed), len(events) - len(to_apply), base

    def _fold_all(
        self,
        to_apply: list[tuple[RecordedEvent, Message]],
        base: dict[str, dict[Key, Row | None]],
        load: Callable[[Table, Key], Row | None],
    ) -> dict[str, dict[Key, Row]] | None:
        """The whole batch on one running state: the common case. None if any handler
        raised; `base` is untouched then, so the batch can be folded again event by event."""
        state = State(self.tables, base, load)
        handlers_of = self.handlers.get
        try:
            for event, _ in to_apply:
                for handler in handlers_of(event.event_type, ()):
                    handler(event, state)
        except Exception:  # a projection bug must not stop the log
            return None
        return state.changed

    def _fold_each(
        self,
        to_apply: list[tuple[RecordedEvent, Message]],
        base: dict[str, dict[Key, Row | None]],
        load: Callable[[Table, Key], Row | None],
    ) -> tuple[dict[str, dict[Key, Row]], list[tuple[RecordedEvent, Message, Exception]]]:
        """Event by event, each on its own state over the rows so far: an event whose
        handlers fail every attempt changes nothing and is returned with its error."""
        rows = {name: dict(table_rows) for name, table_rows in base.items()}
        changed: dict[str, dict[Key, Row]] = {name: {} for name in self.tables}
        failed = []
        for event, message in to_apply:
            handlers = self.handlers.get(event.event_type, ())
            error: Exception | None = None
            for _ in range(self.handler_attempts):
                state = State(self.tables, rows, load)
                try:
                    for handler in handlers:
                        handler(event, state)
                except Exception as exc:
                    error = exc
                    continue
                error = None
                break
            if error is not None:
                failed.append((event, message, error))
                continue
            for name, table_rows in state.changed.items():
                rows[name].update(table_rows)
                changed[name].update(table_rows)
        return changed, failed

    def _prefetch(
        self, tx: SinkTransaction, events: list[RecordedEvent]
    ) -> dict[str, dict[Key, Row | None]]:
        rows: dict[str, dict[Key, Row | None]] = {}
        for name, table in self.tables.items():
            cached = self.cache[name]
            keys = {table.key_of(e) for e in events}
            keys.discard(None)
            missing = [k for k in keys if k not in cached]
            found = tx.load(table, missing) if missing else {}
            rows[name] = {k: cached[k] if k in cached else found.get(k) for k in keys}
        return rows

    def _remember(self, rows: dict[str, dict[Key, Row | None]]) -> None:
        for name, table_rows in rows.items():
            cached = self.cache[name]
            if len(cached) + len(table_rows) > self.cache_rows:
                cached.clear()
            cached.update(table_rows)

    def _forget_cache(self) -> None:
        for cached in self.cache.values():
            cached.clear()

    def _reseek(self, partitions: Iterable[int]) -> None:
        self._forget_cache()
        stored = self.sink.stored_offsets(self.group, self.topic)
        for partition in partitions:
            if partition in self.positions:
                self.positions[partition] = stored.get(partition)
                self.consumer.seek(
                    TopicPartition(self.topic, partition, stored.get(partition, OFFSET_BEGINNING))
                )
