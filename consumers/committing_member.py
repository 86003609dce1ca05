"""The one committing group member: a consumer-group member that hands its owner the
records of the partitions it is given in offset order, with none left out, and commits
each partition up to its lowest record not yet finished — at least once, never skipping.

Both the tool workers and the trigger runtime are built on it. The owner says which
handed records it still owes work for (`hold`) and when that work is done (`finish`,
from any thread); records it does not hold count as finished once handed. What the
member guarantees:

- **Order and no gaps.** Records of a partition reach the owner in offset order. A fetch
  that hands an offset past the next one expected (Tansu 0.6 under load answers with a
  later batch before an earlier one is readable) is noticed by the one reader
  (`reader.out_of_order`), which reads the gap again; its records are handed before the
  later record.
- **Commit to the lowest unfinished offset**, and never past an offset not handed: the
  `CommitPastUnfinished` guard raises rather than leave a record with no ending.
- **Rebalances.** A partition taken away is settled first (the owner lets its work end),
  committed synchronously, then forgotten; a partition lost (the group moved on without
  this member) is forgotten at once, its work left to the next owner. Each assignment of
  a partition has its own generation: work of an earlier one is stale.
- **Bounded waits.** No partition assigned within `settings.assignment_timeout_s` of
  subscribing raises; an outage longer than the tolerance raises (`OutageWatch`); closing
  is bounded.
- **One log.** When Kafka answers again after an outage, the topic must be the one read
  before it (its topic id): a topic deleted or created again meanwhile (a restarted
  in-memory dev broker) is a new log, in which the member's positions and its owner's
  idempotent producer mean nothing (the producer's records time out there); that raises
  at once, naming it, instead of work hanging until a delivery timeout blames Kafka.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from agentlog.consumers.consumer_groups import never_assigned
from agentlog.consumers.group_start import GroupStart
from agentlog.errors import AgentlogError, BrokerUnavailable, CommitPastUnfinished, TopicError
from agentlog.outage import OutageWatch, close_within
from agentlog.reader import out_of_order, partition_offset
from agentlog.settings import Settings
from agentlog.topics import TopicIdentity, topic_identity

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Handed:
    """A record handed to the owner: where it is, and which assignment of its partition
    handed it (work of an earlier assignment is stale)."""

    message: Message
    partition: int
    offset: int
    generation: int


@dataclass
class _Partition:
    """One assigned partition: what is unfinished and what may be committed (every offset
    below the lowest unfinished record, and never past an offset not handed)."""

    number: int
    generation: int
    # The next offset expected from Kafka: every offset below it was handed to the owner.
    # None until the first record when the start is not a real offset.
    next_offset: int | None
    committed: int | None
    unfinished: set[int] = field(default_factory=set)
    at_end: bool = False

    def committable(self) -> int | None:
        return min(self.unfinished) if self.unfinished else self.next_offset

    def check_commit(self, position: int, what: str) -> None:
        """The guard: committing `position` must leave no record behind unfinished."""
        unfinished = sorted(o for o in self.unfinished if o < position)
        if unfinished or self.next_offset is None or position > self.next_offset:
            raise CommitPastUnfinished(
                f"refusing to commit offset {position} of partition {self.number}: {what} "
                f"{unfinished[:5]} are unfinished and offsets from {self.next_offset} on "
                "were never handed"
            )


class CommittingMember:
    """A member of `group` on `topic` (consumer configuration `config`, e.g. from
    `kafka_config.group_consumer_config`) for an owner that works on what it is handed.

    The owner's hooks, all called on the thread that polls:
    - `assigned(numbers)`: partitions given (before their first record is handed);
    - `settle(numbers)`: partitions going away: return once their work in flight ended;
    - `forget(numbers)`: partitions gone (after the commit, or lost).
    `flush()` (e.g. the owner's producer's) runs before each commit that moves offsets."""

    def __init__(
        self,
        settings: Settings,
        topic: str,
        group: str,
        config: dict[str, Any],
        start: GroupStart,
        *,
        service: str,
        what: str,
        assigned: Callable[[list[int], dict[int, int]], None] | None = None,
        settle: Callable[[set[int]], None] | None = None,
        forget: Callable[[set[int]], None] | None = None,
        flush: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.topic = topic
        self.group = group
        self.name = f"{service} of group {group}"  # in messages: "tool worker of group g"
        self.what = what  # what the records are, in messages ("requests", "events")
        self._start = start
        self._on_assigned = assigned
        self._settle = settle
        self._on_forget = forget
        self._flush = flush
        self._parts: dict[int, _Partition] = {}
        self._lock = threading.Lock()
        self._generations = 0
        self._assigned_once = False
        self._subscribed_at: float | None = None
        # When (time.monotonic()) the group first assigned this member its partitions:
        # what joining took, for progress and benchmarks.
        self.assigned_at: float | None = None
        self._last_commit = 0.0
        self._paused = False
        self.outage = OutageWatch(settings, self.name)
        # The topic's id at the first assignment (None: unknown, or the broker names none).
        self._identity: TopicIdentity | None = None
        config = dict(config)
        config["error_cb"] = self.outage.on_error
        self.consumer = Consumer(config)

    # -- reading ------------------------------------------------------------------------

    def subscribe(self) -> None:
        self._subscribed_at = time.monotonic()
        self.consumer.subscribe(
            [self.topic], on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._lost
        )

    def poll(self, at_most: int, wait: float) -> list[Message]:
        """Up to `at_most` records (and end-of-partition events): waits up to `wait`
        seconds for the first, takes the rest already fetched without waiting. Raises when
        no partition was assigned in time, or when Kafka has been gone too long."""
        self.check_assigned()
        first = self.consumer.poll(wait)
        messages = [first] if first is not None else []
        if first is not None and at_most > 1:
            messages.extend(self.consumer.consume(at_most - 1, 0))
        was_down = self.outage.down
        if messages:
            self.outage.answered()
        self.outage.check(self.consumer, self.topic)
        if was_down and not self.outage.down:
            self._check_same_log()
        return messages

    def _check_same_log(self) -> None:
        """Kafka answers again: raise unless the topic is the log read before the outage."""
        before = self._identity
        if before is None or before.topic_id is None:
            return
        try:
            now: TopicIdentity | None = topic_identity(self.settings, self.topic)
        except TopicError:
            now = None
        except BrokerUnavailable:
            return  # gone again: the outage watch goes on
        if now is not None and now.topic_id == before.topic_id:
            return
        happened = "deleted" if now is None else "deleted and created again"
        raise TopicError(
            f"{self.name}: while Kafka did not answer, {self.topic} was {happened} (a "
            "restarted dev broker?): it is a new log, in which the positions and producer of "
            "this process mean nothing; start it again to work on the new log"
        )

    def check_assigned(self) -> None:
        """Raise when nothing was assigned within `settings.assignment_timeout_s`."""
        if self._assigned_once or self._subscribed_at is None:
            return
        timeout = self.settings.assignment_timeout_s
        if time.monotonic() - self._subscribed_at > timeout:
            raise never_assigned(
                self.settings, self.topic, self.group, timeout, answering=not self.outage.down
            )

    def take(self, message: Message) -> list[Handed]:
        """The records `message` hands the owner, in offset order: none (an event, a
        record handed again, one of a partition no longer assigned), it, or the records
        of a gap before it (read again) and then it."""
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                part = self._parts.get(partition_offset(message)[0])
                if part is not None:
                    part.at_end = True
            elif error.fatal():
                raise BrokerUnavailable(f"{self.name}: consumer failed: {error.str()}")
            else:
                log.warning("%s: %s", self.name, error.str())
            return []
        partition, offset = partition_offset(message)
        part = self._parts.get(partition)
        if part is None:
            return []  # revoked while the record was on its way
        part.at_end = False
        skipped = out_of_order(self.settings, self.topic, partition, offset, part.next_offset)
        if skipped is None:
            part.next_offset = offset + 1
            return [Handed(message, partition, offset, part.generation)]
        if skipped.below:
            return []  # handed again: taken already
        # Offsets Kafka did not hand over, read again: never pass over a record.
        handed = [
            Handed(missing, partition, partition_offset(missing)[1], part.generation)
            for missing in skipped.missing
        ]
        handed.append(Handed(message, partition, offset, part.generation))
        part.next_offset = offset + 1
        return handed

    # -- what the owner owes ------------------------------------------------------------

    def hold(self, handed: Handed) -> bool:
        """The owner still has work for `handed`: nothing from it on is committed until it
        is finished. False when its partition's assignment is over (stale)."""
        with self._lock:
            part = self._parts.get(handed.partition)
            if part is None or part.generation != handed.generation:
                return False
            part.unfinished.add(handed.offset)
            return True

    def finish(self, partition: int, generation: int, offset: int) -> None:
        """The work for a held record is done (from any thread)."""
        with self._lock:
            part = self._parts.get(partition)
            if part is not None and part.generation == generation:
                part.unfinished.discard(offset)

    def owns(self, partition: int, generation: int) -> bool:
        """Whether that assignment of the partition is still this member's."""
        part = self._parts.get(partition)
        return part is not None and part.generation == generation

    def owned(self) -> set[int]:
        return set(self._parts)

    def unfinished(self) -> int:
        """How many held records are not finished."""
        with self._lock:
            return sum(len(p.unfinished) for p in self._parts.values())

    def caught_up(self) -> bool:
        """Assigned, every partition read to its end, and everything handed finished (what
        is left to commit, `close` commits)."""
        with self._lock:
            return self._assigned_once and all(
                p.at_end and not p.unfinished for p in self._parts.values()
            )

    # -- flow -----------------------------------------------------------------------------

    def pause_while(self, full: bool, empty_enough: bool) -> None:
        """Stop fetching while `full`; fetch again once `empty_enough`."""
        if self._paused == full or (self._paused and not empty_enough):
            return
        assigned = [TopicPartition(self.topic, n) for n in self._parts]
        if full:
            self.consumer.pause(assigned)
        else:
            self.consumer.resume(assigned)
        self._paused = full

    # -- commits ------------------------------------------------------------------------

    def commit_due(self, every_s: float) -> None:
        now = time.monotonic()
        if now - self._last_commit >= every_s:
            self._last_commit = now
            self.commit(asynchronous=True)

    def commit(self, numbers: set[int] | None = None, *, asynchronous: bool) -> None:
        """Commit each partition (of `numbers`, else all) up to its lowest unfinished
        record."""
        moves: list[tuple[_Partition, int]] = []
        with self._lock:
            for number in self._parts if numbers is None else numbers:
                part = self._parts.get(number)
                position = part.committable() if part is not None else None
                if part is not None and position is not None and position != part.committed:
                    part.check_commit(position, self.what)
                    moves.append((part, position))
        if not moves:
            return
        if self._flush is not None:
            # What the owner's work recorded is on Kafka before it counts as done (else a
            # crash after the commit would lose it).
            self._flush()
        offsets = []
        for part, position in moves:
            part.committed = position
            offsets.append(TopicPartition(self.topic, part.number, position))
        try:
            if asynchronous:
                self.consumer.commit(offsets=offsets, asynchronous=True)
            else:
                self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # A rebalance under way: the records are handed out again (at least once).
            log.warning("commit of %s failed: %s", offsets, exc.args[0].str())

    # -- rebalances -----------------------------------------------------------------------

    def track(self, partition: int, start: int) -> None:
        """Take `partition` on from offset `start` (a new generation of it): what the
        assignment callback does for each partition given."""
        self._generations += 1
        known = start if start >= 0 else None
        with self._lock:
            self._parts[partition] = _Partition(partition, self._generations, known, known)

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if not self._assigned_once:
            # The log this member reads, once Kafka has answered (the first assignment):
            # compared with the broker's after an outage.
            try:
                self._identity = topic_identity(self.settings, self.topic)
            except AgentlogError:
                self._identity = None  # not known: not checked
        self._assigned_once = True
        if self.assigned_at is None:
            self.assigned_at = time.monotonic()
        numbers = sorted(tp.partition for tp in partitions)
        starts = self._start.offsets(consumer, numbers) if numbers else {}
        for tp in partitions:
            tp.offset = starts[tp.partition]
            self.track(tp.partition, tp.offset)
        if self._on_assigned is not None:
            self._on_assigned(numbers, starts)
        consumer.assign(partitions)
        self._paused = False
        log.info("%s: assigned %s", self.name, starts)

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Let the work of the partitions going away end, commit it, forget them, so that
        their next owner starts where this member ended."""
        numbers = {tp.partition for tp in partitions}
        if self._settle is not None:
            self._settle(numbers)
        self.commit(numbers, asynchronous=False)
        self._forget(numbers)
        consumer.unassign()

    def _lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """The group moved the partitions on without this member (it was too slow to
        answer): their work in flight is left to the new owner, unrecorded."""
        numbers = {tp.partition for tp in partitions}
        self._forget(numbers)
        log.warning("%s: partitions %s were lost to the group", self.name, sorted(numbers))
        consumer.unassign()

    def _forget(self, numbers: set[int]) -> None:
        with self._lock:
            for number in numbers:
                self._parts.pop(number, None)
        if self._on_forget is not None:
            self._on_forget(numbers)

    # -- stopping -------------------------------------------------------------------------

    def close(self) -> None:
        """Commit what is finished and leave the group (bounded, for a broker that is
        gone)."""
        try:
            self.commit(asynchronous=False)
        finally:
            close_within(self.consumer, self.name)
