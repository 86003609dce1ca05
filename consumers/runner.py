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

The runner also refuses to mix logs: the sink records the topic id and partition
count it applied (`log_check`), checked before the first batch and on every
assignment, with the event id at the last applied offset of each partition. It
notices records that retention deleted before they were applied, stores a partition's
end when it ends in records it never sees (transaction markers), and bounds its waits
(the group's assignment, the dead-letter topic's acknowledgement).

Reading: as a group member it polls its own consumer (assignment callbacks seek it to the
sink's offsets; it commits advice), so it cannot hand its partitions to the one partition
reader (`agentlog.reader`); it uses that reader for everything else: partition ends from
the fetch's high watermark, offsets a fetch did not hand (`out_of_order`), and the record at
the last applied offset (the log-identity check).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from agentlog.consumers.dead_letters import DeadLetter, DeadLetters
from agentlog.consumers.dedup_window import DedupWindow
from agentlog.consumers.fold import Batch, Folder
from agentlog.consumers.log_check import (
    Placement,
    check_identity,
    check_last_applied,
    partitions_changed,
)
from agentlog.consumers.projection import Projection
from agentlog.consumers.sinks.base import AppliedLog, Fenced, LastApplied, SentDeadLetter, Sink
from agentlog.errors import (
    AgentlogError,
    BrokerUnavailable,
    DeadLettersNotTaken,
    DecodeError,
    NotAssigned,
    NotTheAppliedLog,
    PartitionsChanged,
)
from agentlog.kafka_config import group_consumer_config
from agentlog.log_identity import projection, starts_again
from agentlog.outage import OutageWatch, close_within
from agentlog.reader import high_watermark, out_of_order, partition_offset
from agentlog.recorded import Position, RecordedEvent, position_of, recorded_event
from agentlog.serde import claim_check_store
from agentlog.settings import Settings
from agentlog.start_from import EARLIEST, StartFrom, first_offsets
from agentlog.topics import TopicIdentity, topic_identity

log = logging.getLogger(__name__)

DEFAULT_GROUP = "agentlog-projector"
# After a batch turned out to hold an event applied before, this many batches look
# applied ids up before folding (a producer that repeated one event often repeats more).
CAREFUL_BATCHES = 20
# How often a running member asks the broker how many partitions the topic has: with
# producers not using murmur2 (whose records show a change at once), and before the
# group rebalances, this is how partitions added to the topic are noticed.
PARTITION_CHECK_SECONDS = 5.0


class _AppliedBefore(AgentlogError):
    """The batch holds an event applied by an earlier batch: fold it again carefully."""


# fold.py writes a handler's failure as "handler failed: <exception type>: <message>".
HANDLER_FAILED = "handler failed: "


@dataclass
class Progress:
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    lost_to_retention: int = 0  # offsets deleted by retention before they were applied
    batches: int = 0
    fenced: int = 0
    lag: int | None = None
    first_batch_at: float | None = None
    last_batch_at: float | None = None
    interrupted: bool = False  # stopped by SIGINT (Ctrl-C) rather than done or SIGTERM

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
        start: StartFrom = EARLIEST,
    ) -> None:
        self.settings = settings
        # where a group with no offsets in the sink starts (`--from`); ignored otherwise
        self.start = start
        self.topic = settings.events_topic
        self._blobs = claim_check_store(settings)
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
        # partition -> the offset a seek asked for, until its first record arrives: a
        # later first record means retention deleted records never applied
        self.floors: dict[int, int] = {}
        # partition -> the offset the next record handed should have
        self._next_seen: dict[int, int] = {}
        # partition -> end reported at end-of-partition, to store if no record reached it
        self.eofs: dict[int, int] = {}
        self.assigned = False
        self.assigned_once = False
        self.started_at: dict[int, int] = {}
        self._assign_by = 0.0
        self._partitions_checked_at = 0.0
        self.identity: TopicIdentity | None = None
        self.placement: Placement | None = None
        self.dedup = DedupWindow(int(settings.dedup_window.total_seconds() * 1_000_000))
        # sent dead letters whose batch committed may linger in the sink: forget them
        self._letters_to_forget = True
        self.careful = 0
        self._stop = False
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="agentlog-sink")
        self._pending: tuple[Batch, Future[None]] | None = None
        self._outage = OutageWatch(settings, f"projector {group}")
        config = group_consumer_config(settings, group)
        config["error_cb"] = self._outage.on_error
        self.consumer = Consumer(config)
        sink.prepare(self.tables.values(), group)

    # -- group membership -------------------------------------------------------------

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._finish_pending(reseek=False)
        self._check_log(record=False)
        owned = [tp.partition for tp in partitions]
        self._check_last_applied(owned)
        stored = self.sink.stored_offsets(self.group, self.topic)
        for tp in partitions:
            self.positions[tp.partition] = stored.get(tp.partition)
            tp.offset = stored.get(tp.partition, OFFSET_BEGINNING)
            self._sought(tp.partition, stored.get(tp.partition))
        consumer.assign(partitions)
        self.folder.forget()
        self.assigned = self.assigned_once = True
        log.info("assigned %s", {tp.partition: tp.offset for tp in partitions})

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._finish_pending(reseek=False)
        for tp in partitions:
            self.positions.pop(tp.partition, None)
            self._sought(tp.partition, None)
        self.folder.forget()
        consumer.unassign()
        self.assigned = False
        self._assign_by = time.monotonic() + self.settings.assignment_timeout_s

    def _sought(self, partition: int, offset: int | None) -> None:
        """Forget what was learnt reading the partition before a seek to `offset`."""
        self.ends_seen.discard(partition)
        self.eofs.pop(partition, None)
        self._next_seen.pop(partition, None)
        if offset is None:
            self.floors.pop(partition, None)
        else:
            self.floors[partition] = offset

    # -- which log ------------------------------------------------------------------

    def _check_log(self, *, record: bool) -> None:
        """Raise unless the topic is the log the sink applied (recording it, the first
        time); a changed partition count is recorded as a refusal for the whole group."""
        identity = topic_identity(self.settings, self.topic)
        applied = self.sink.stored_log(self.group, self.topic)
        if applied is None and record:
            applied = self.sink.record_log(
                self.group, self.topic, AppliedLog(identity.topic_id, identity.partitions)
            )
        if applied is not None:
            self._check_identity(identity, applied)
        self.identity = identity
        if self.placement is None or self.placement.partitions != identity.partitions:
            self.placement = Placement(identity.partitions)

    def _store_start(self) -> dict[int, int]:
        """A group new to the sink that starts later than the beginning (`--from latest|
        TIME`) stores its first offsets, and that it started there, as its first claim:
        in the sink's transaction, so that a second member starting at once is fenced
        and every member (and a restart) resumes from them. Returns the stored start
        per partition (none: every partition is applied from the beginning)."""
        if self.start.kind != "earliest" and not self.sink.stored_offsets(self.group, self.topic):
            assert self.identity is not None
            starts = first_offsets(
                self.settings, self.topic, list(range(self.identity.partitions)), self.start
            )
            try:
                with self.sink.transaction(self.group, self.topic) as tx:
                    tx.claim({p: (None, offset) for p, offset in starts.items()})
                    tx.mark_start(starts)
            except Fenced:
                pass  # another member started the group first: its start stands
        return self.sink.started_at(self.group, self.topic)

    def _check_identity(self, identity: TopicIdentity, applied: AppliedLog) -> None:
        try:
            check_identity(identity, applied, self.group, self.sink.description)
        except PartitionsChanged:
            if applied.refused is None:
                reason = partitions_changed(self.topic, applied.partitions, identity.partitions)
                self.sink.refuse_log(self.group, self.topic, reason)
            raise

    def _check_last_applied(self, partitions: list[int]) -> None:
        last = self.sink.last_applied(self.group, self.topic)
        last = {p: last[p] for p in partitions if p in last}
        check_last_applied(self.settings, self.topic, last, self.sink.description)

    def _check_partition_count(self) -> None:
        """Ask the broker (over the consumer's own connection) whether the partition count
        is still the one the sink was built with."""
        try:
            described = self.consumer.list_topics(self.topic, timeout=5).topics.get(self.topic)
        except KafkaException:
            return  # the broker did not answer now; the next check (or a rebalance) will
        if described is None or described.error is not None or self.identity is None:
            return
        if len(described.partitions) != self.identity.partitions:
            self._check_log(record=False)

    def _misplaced(self, partition: int, offset: int) -> None:
        """A record sits in another partition than the one its key maps to under the
        partition count the sink was built with: partitions were added (producers saw
        them first), or the producer does not use murmur2."""
        assert self.identity is not None
        now = topic_identity(self.settings, self.topic)
        if now.partitions != self.identity.partitions:
            applied = self.sink.stored_log(self.group, self.topic)
            assert applied is not None
            self._check_identity(now, applied)
        log.info(
            "%s[%d]@%d was not placed by the murmur2 partitioner; partition changes will be "
            "noticed by asking the broker every %.0f s",
            self.topic,
            partition,
            offset,
            PARTITION_CHECK_SECONDS,
        )
        self.placement = None

    def stop(self) -> None:
        """Ask the runner to stop after the batch in hand (safe from a signal handler)."""
        self._stop = True

    # -- the loop ---------------------------------------------------------------------

    def run(self, *, once: bool = False) -> Progress:
        """Apply events until stopped; with `once`, until caught up with the partition
        ends (the ends seen when each partition was first read)."""
        last_report = 0.0
        # Process-wide tuning is the caller's choice: see tune_process_for_throughput().
        try:
            self._check_log(record=True)
            self.started_at = self._store_start()
            self._assign_by = time.monotonic() + self.settings.assignment_timeout_s
            self.consumer.subscribe(
                [self.topic],
                on_assign=self._assigned,
                on_revoke=self._revoked,
                on_lost=self._revoked,
            )
            while not self._stop:
                messages = self.consumer.consume(self.batch_size, 0.5)
                was_down = self._outage.down
                if messages:
                    self._outage.answered()
                self._outage.check(self.consumer, self.topic)
                if was_down and not self._outage.down:  # the group forms again from now
                    self._assign_by = time.monotonic() + self.settings.assignment_timeout_s
                records = self._records_of(messages)
                if records:
                    if self.progress.first_batch_at is None:
                        self.progress.first_batch_at = time.monotonic()
                    self._apply(self._decoded(records), records)
                else:
                    self._finish_pending()
                self._store_ends_past_markers()
                now = time.monotonic()
                if now - self._partitions_checked_at >= PARTITION_CHECK_SECONDS:
                    self._partitions_checked_at = now
                    self._check_partition_count()
                if not self.assigned and now > self._assign_by and self._outage.down:
                    self._assign_by = now + self.settings.assignment_timeout_s  # no broker
                if not self.assigned and now > self._assign_by:
                    raise NotAssigned(
                        f"consumer group {self.group} assigned this member no partitions of "
                        f"{self.topic} within {self.settings.assignment_timeout_s:.0f}s: the "
                        "group is stuck rebalancing (a member that died while joining holds "
                        "it until its poll interval runs out); run again later, or raise "
                        "AGENTLOG_ASSIGNMENT_TIMEOUT_S"
                    )
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
                close_within(self.consumer, f"projector {self.group}")
        return self.progress

    def _records_of(self, messages: list[Message]) -> list[Message]:
        records = []
        for message in messages:
            error = message.error()
            if error is None:
                partition = message.partition()
                if partition in self.positions:
                    self.ends_seen.discard(partition)
                    offset = partition_offset(message)[1]
                    expected = self._next_seen.get(partition)
                    if self.floors and partition in self.floors:
                        expected = self._check_floor(partition, offset)
                    skipped = out_of_order(self.settings, self.topic, partition, offset, expected)
                    if skipped is not None:
                        # A gap's records (read again) go first; a record below the offset
                        # expected is taken, and refused if below the offsets applied
                        # (`_check_not_rewound`).
                        records += skipped.missing
                    self._next_seen[partition] = offset + 1
                    records.append(message)
                    if partition not in self.targets:
                        self._note_target(partition)
            elif error.code() == KafkaError._PARTITION_EOF:
                partition, end = partition_offset(message)
                self.ends_seen.add(partition)
                if partition in self.positions:
                    self.eofs[partition] = end
            elif error.fatal():
                raise BrokerUnavailable(f"consumer failed: {error.str()}")
            else:
                log.warning("consumer: %s", error.str())
        return records

    def _check_floor(self, partition: int, offset: int) -> int:
        """The first record after a seek: if it lies past the offset sought, and the log
        now starts past it too, retention deleted records this group never applied.
        Returns the first offset the log still holds from the one sought."""
        floor = self.floors.pop(partition)
        if offset <= floor:
            return floor
        start, _ = self.consumer.get_watermark_offsets(
            TopicPartition(self.topic, partition), cached=True
        )
        if start > floor:
            lost = start - floor
            self.progress.lost_to_retention += lost
            log.warning(
                "%s[%d]: offsets %d to %d (%s records) were deleted by retention before "
                "group %s applied them; they are missing from %s, which goes on from offset %d",
                self.topic,
                partition,
                floor,
                start - 1,
                f"{lost:,}",
                self.group,
                self.sink.description,
                start,
            )
            return start
        return floor

    def _store_ends_past_markers(self) -> None:
        """A partition whose end lies past its last record (a transaction's commit marker,
        records of an aborted transaction) is stored as applied up to that end, so its
        lag reaches 0. Only ends reported after every record before them was applied
        (a re-seek forgets them)."""
        if not self.eofs:
            return
        after = self._positions_after_pending()
        ends = {p: end for p, end in self.eofs.items() if p in after and (after[p] or 0) < end}
        self.eofs.clear()
        if ends:
            self._apply(Batch([], [], ends), [])

    def _note_target(self, partition: int) -> None:
        high = high_watermark(self.consumer, self.topic, partition)
        if high is not None:
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
        """Offsets not applied yet in the partitions owned; None while any end is unknown
        (nothing assigned yet, or no fetch answered)."""
        if not self.assigned:
            return None
        total = 0
        for partition, position in self.positions.items():
            high = high_watermark(self.consumer, self.topic, partition)
            if high is None:
                return None
            total += max(0, high - (position or 0))
        return total

    # -- one batch --------------------------------------------------------------------

    def _decoded(self, messages: list[Message]) -> Batch:
        events: list[RecordedEvent] = []
        dead: list[tuple[Position, str, int]] = []
        ends: dict[int, int] = {}
        placement = self.placement
        placed = placement.of if placement is not None else None
        misplaced: Message | None = None
        for message in messages:
            partition = message.partition()
            offset = message.offset()
            assert partition is not None and offset is not None  # a record has both
            if partition not in ends:
                self._check_not_rewound(partition, offset)
            ends[partition] = offset + 1
            if placed is not None:  # inlined: this runs for every record
                key = message.key()
                if placed.get(key) != partition and misplaced is None:
                    assert placement is not None
                    where = placement.place(key)
                    if where is not None and where != partition:
                        misplaced = message
            try:
                events.append(recorded_event(message, blobs=self._blobs))
            except DecodeError as exc:
                dead.append((position_of(message), str(exc), 1))
        if misplaced is not None:
            self._misplaced(*partition_offset(misplaced))
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
        last, newest = _last_events(batch)
        self.dedup.saw(newest)
        work = _Work(batch, moves, last, self.dedup.forget_due(), _records_of(batch, messages))
        self._pending = (batch, self._writer.submit(self._store, work))

    def _store(self, work: _Work) -> None:
        """The batch's sink transaction, on the writer thread."""
        batch = work.batch
        with self.sink.transaction(self.group, self.topic) as tx:
            tx.claim(work.moves)
            applied_log = tx.stored_log()
            if applied_log is not None and self.identity is not None:
                # another member may have found the partition count changed
                check_identity(self.identity, applied_log, self.group, self.sink.description)
            if tx.mark_applied(batch.applied) != len(batch.applied):
                raise _AppliedBefore()
            tx.mark_last(work.last)
            for name, rows in batch.changed.items():
                tx.upsert(self.tables[name], rows)
            if work.forget_before:
                tx.forget_applied_before(work.forget_before)
            if batch.dead:
                self._send_dead_letters(work.dead_records)
            if batch.dead or self._letters_to_forget:
                tx.forget_sent_dead_letters()

    def _send_dead_letters(self, dead: list[tuple[Message, str, int]]) -> None:
        """Send the batch's dead letters, except those sent before (by a try of this batch
        that rolled back), and record the ones Kafka takes at once, outside the batch's
        transaction: a retry after a rollback does not send them again."""
        letters = [_dead_letter(message, error, attempts) for message, error, attempts in dead]
        sent_before = self.sink.sent_dead_letters(self.group, [letter.id for letter in letters])
        delivery = self.dead_letters.deliver(
            [letter for letter in letters if letter.id not in sent_before],
            self.settings.dead_letter_timeout_s,
        )
        self.sink.record_sent_dead_letters(
            self.group,
            self.topic,
            [
                SentDeadLetter(letter.id, *partition_offset(letter.record))
                for letter in delivery.acknowledged
            ],
        )
        if delivery.failed:
            first, why = delivery.failed[0]
            raise DeadLettersNotTaken(
                f"{self.dead_letters.topic} did not take {len(delivery.failed)} dead "
                f"letter(s) of a batch (the first, {first.id}: {why}); the batch was rolled "
                "back, so nothing is lost, and the projector stopped: run it again once "
                f"{self.dead_letters.topic} accepts records (the {len(delivery.acknowledged)} "
                "it took will not be sent twice; AGENTLOG_DEAD_LETTER_TIMEOUT_S="
                f"{self.settings.dead_letter_timeout_s:g} bounds the wait)"
            )

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
        self._letters_to_forget = bool(batch.dead)
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
            applier = projection(self.sink.description)
            raise NotTheAppliedLog(starts_again(self.topic, partition, offset, stored, applier))

    def _reseek(self, partitions: Iterable[int]) -> None:
        stored = self.sink.stored_offsets(self.group, self.topic)
        for partition in partitions:
            if partition in self.positions:
                self.positions[partition] = stored.get(partition)
                self._sought(partition, stored.get(partition))
                self.consumer.seek(
                    TopicPartition(self.topic, partition, stored.get(partition, OFFSET_BEGINNING))
                )


@dataclass
class _Work:
    """What the writer thread stores for one batch."""

    batch: Batch
    moves: dict[int, tuple[int | None, int]]
    last: dict[int, LastApplied]
    forget_before: dict[int, int]  # partition -> forget applied ids older than this
    dead_records: list[tuple[Message, str, int]]  # the original records of batch.dead


def _records_of(batch: Batch, messages: list[Message]) -> list[tuple[Message, str, int]]:
    """The batch's dead letters with their original records: the fold knows only where
    each sits, a dead letter carries the record itself."""
    if not batch.dead:
        return []
    at = {partition_offset(m): m for m in messages}
    return [
        (at[position.partition, position.offset], error, attempts)
        for position, error, attempts in batch.dead
    ]


def _last_events(batch: Batch) -> tuple[dict[int, LastApplied], dict[int, int]]:
    """The last event of each partition in the batch (what the log must still hold there
    for the sink's offsets to mean anything), and its event time: a partition's events
    come in about event-time order, so the last one stands for its newest."""
    last: dict[int, LastApplied] = {}
    newest: dict[int, int] = {}
    for event in reversed(batch.events):
        if event.partition not in last:
            last[event.partition] = LastApplied(event.offset, event.event_id)
            newest[event.partition] = event.occurred_at
            if len(last) == len(batch.ends):
                break
    return last, newest


def _dead_letter(message: Message, error: str, attempts: int) -> DeadLetter:
    if error.startswith(HANDLER_FAILED):
        exception_class, _, text = error.removeprefix(HANDLER_FAILED).partition(": ")
    else:
        exception_class, text = f"{DecodeError.__module__}.{DecodeError.__name__}", error
    return DeadLetter(message, error, attempts, exception_class, text)
