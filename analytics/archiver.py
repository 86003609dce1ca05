"""The archiver: every record of the event log into Parquet files, exactly once.

It reads all partitions of the events topic (assigned, not as a group member: one
archiver per archive, held by a lock file) from the offsets its files say are next,
and writes what it holds per partition and day every `archive_flush_seconds` or every
`archive_batch_records` records. The files written are its stored offsets (see
`archive_files`), so a crash loses nothing and repeats nothing. Partition ends come
from the fetch (end-of-partition events and the fetch's high watermark), never from
ListOffsets, which Tansu answers wrongly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Message

from agentlog.analytics.archive_files import (
    Compactor,
    archive_files,
    remove_leftovers,
    topic_root,
    write_file,
    writer_lock,
)
from agentlog.analytics.archive_start import (
    ArchiveStart,
    archived_up_to,
    read_start,
    start_archive,
)
from agentlog.analytics.columns import RawRecord, Rows
from agentlog.analytics.log_check import check_same_log
from agentlog.errors import ArchiveBusy, ArchiveError, BrokerUnavailable
from agentlog.log_identity import archive, starts_again
from agentlog.outage import OutageWatch, close_within
from agentlog.reader import PartitionReader, out_of_order, partition_ends, partition_offset
from agentlog.settings import Settings
from agentlog.start_from import EARLIEST, StartFrom
from agentlog.topics import partition_count

log = logging.getLogger(__name__)

# How often a following archiver looks for partitions added to the topic.
_PARTITION_CHECK_SECONDS = 60.0


@dataclass
class ArchiveProgress:
    archived: int = 0
    files: int = 0
    merged: int = 0
    undecodable: int = 0
    lag: int | None = None
    started_at: float = field(default_factory=time.monotonic)
    first_record_at: float | None = None
    last_write_at: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Records archived per second since the first record was read."""
        if self.first_record_at is None or self.last_write_at is None:
            return 0.0
        return self.archived / max(self.last_write_at - self.first_record_at, 1e-9)


ProgressCallback = Callable[[ArchiveProgress], None]


class Archiver:
    def __init__(
        self,
        settings: Settings,
        *,
        archive: Path | None = None,
        idle_timeout: float = 30.0,
        on_progress: ProgressCallback | None = None,
        start: StartFrom = EARLIEST,
    ) -> None:
        self.settings = settings
        # where a new archive starts (`--from`); an archive with files or a start keeps its
        self.start_from = start
        self.start: ArchiveStart | None = None
        self.topic = settings.events_topic
        self._outage = OutageWatch(settings, f"archiver of {self.topic}")
        self.root = topic_root(archive or settings.archive_root, self.topic)
        self.idle_timeout = idle_timeout
        self.on_progress = on_progress
        self.progress = ArchiveProgress()
        self.compactor = Compactor(self.root, min_files=settings.archive_compact_files)
        self._stop = False
        # partition -> next offset to read (buffered or written); None: from the beginning
        self.positions: dict[int, int | None] = {}
        self.written: dict[int, int] = {}
        self.buffers: dict[int, list[RawRecord]] = {}
        self.buffered = 0
        self.first_buffered_at: float | None = None
        self.ends_seen: set[int] = set()
        self.targets: dict[int, int] = {}

    def stop(self) -> None:
        """Stop after writing what is held (safe from a signal handler)."""
        self._stop = True

    def run(self, *, once: bool = False) -> ArchiveProgress:
        """Archive until stopped; with `once`, until every partition is archived up to
        the end it had when first read."""
        with writer_lock(self.root):
            remove_leftovers(self.root)
            files = archive_files(self.root)
            count = partition_count(self.settings, self.topic)
            self.progress.notes += check_same_log(
                self.settings, self.topic, self.root, files, count
            )
            self.start = start_archive(
                self.settings, self.topic, self.root, count, self.start_from, new=not files
            )
            # A partition with no files yet starts where the archive starts.
            self.written = archived_up_to(self.start, files)
            # The one partition reader, following (a long fetch wait, out-of-range answered
            # from the log start); an outage is the service's to ride out or give up on.
            reader = PartitionReader(
                self.settings,
                self.topic,
                idle_timeout=self.idle_timeout,
                reset=True,
                watch=self._outage,
            )
            try:
                self._assign(reader, range(count))
                self._loop(reader, once)
            finally:
                try:
                    self._write()
                    if once:
                        self.compactor.compact(archive_files(self.root))
                        self.compactor.delete_due(0, all_of_them=True)
                finally:
                    self.progress.lag = self._lag(reader)
                    close_within(reader.consumer, f"archiver of {self.topic}")
        return self.progress

    def _assign(self, reader: PartitionReader, partitions: range | list[int]) -> None:
        new = [p for p in partitions if p not in self.positions]
        for p in new:
            self.positions[p] = self.written.get(p)
            self.buffers[p] = []
        if new:
            reader.assign({p: self.written.get(p, OFFSET_BEGINNING) for p in new})

    def _loop(self, reader: PartitionReader, once: bool) -> None:
        last_report = last_partition_check = time.monotonic()
        while not self._stop:
            waiting_for = (
                f"{self.topic} to archive it (partitions "
                f"{sorted(p for p in self.positions if not self._done(p))} not read to the end)"
            )
            messages = reader.fetch(waiting_for, idle_timeout=self.idle_timeout if once else None)
            now = time.monotonic()
            if messages:
                self._take(reader, messages)
            if self.buffered and (
                self.buffered >= self.settings.archive_batch_records
                or now - (self.first_buffered_at or now) >= self.settings.archive_flush_seconds
                or (once and self._caught_up())
            ):
                self._write()
                if not once:
                    self.progress.merged += self.compactor.compact(archive_files(self.root))
            if self.on_progress is not None and now - last_report >= 1.0:
                last_report = now
                self.progress.lag = self._lag(reader)
                self.on_progress(self.progress)
            if once and self._caught_up() and not self.buffered:
                return
            if not once and now - last_partition_check >= _PARTITION_CHECK_SECONDS:
                last_partition_check = now
                try:
                    count = partition_count(self.settings, self.topic)
                except BrokerUnavailable as exc:
                    self._outage.lost(str(exc))  # checked again in a minute
                else:
                    self._assign(reader, range(count))

    def _take(self, reader: PartitionReader, messages: list[Message]) -> None:
        for message in messages:
            partition, offset = partition_offset(message)
            if message.error() is not None:  # the reader hands only partition ends
                self.ends_seen.add(partition)
                continue
            expected = self.positions.get(partition)
            skipped = out_of_order(self.settings, self.topic, partition, offset, expected)
            if skipped is not None:
                if skipped.below:
                    applier = archive(self.root)
                    why = starts_again(self.topic, partition, offset, skipped.expected, applier)
                    raise ArchiveError(why)
                # Offsets not handed, read again (a broker may answer a fetch short): only
                # what the log really lacks is left out.
                for record in skipped.missing:
                    self._buffer(reader, record, partition, partition_offset(record)[1])
                if skipped.lost:
                    # Deleted by retention before they were archived (or transaction markers).
                    self.progress.notes.append(
                        f"{self.topic}[{partition}]: offsets {skipped.expected}..{offset - 1} "
                        "were not in the log any more when the archiver reached them"
                    )
            self._buffer(reader, message, partition, offset)

    def _buffer(
        self, reader: PartitionReader, message: Message, partition: int, offset: int
    ) -> None:
        self.ends_seen.discard(partition)
        if partition not in self.targets:
            high = reader.high_watermark(partition)
            if high is not None:
                self.targets[partition] = high
        kind, stamp = message.timestamp()
        self.buffers[partition].append(
            RawRecord(partition, offset, stamp if kind else None, message.value())
        )
        self.positions[partition] = offset + 1
        self.buffered += 1
        if self.first_buffered_at is None:
            self.first_buffered_at = time.monotonic()
        if self.progress.first_record_at is None:
            self.progress.first_record_at = time.monotonic()

    def _done(self, partition: int) -> bool:
        position = self.positions.get(partition)
        return partition in self.ends_seen or (
            partition in self.targets and (position or 0) >= self.targets[partition]
        )

    def _caught_up(self) -> bool:
        return all(self._done(p) for p in self.positions)

    def _write(self) -> None:
        """Write every partition's records (see `write_records`)."""
        for partition, records in self.buffers.items():
            if not records:
                continue
            files, undecodable = write_records(self.root, self.topic, records)
            self.progress.files += files
            self.progress.undecodable += undecodable
            self.progress.archived += len(records)
            self.written[partition] = records[-1].offset + 1
            self.buffers[partition] = []
        self.buffered = 0
        self.first_buffered_at = None
        self.progress.last_write_at = time.monotonic()

    def _lag(self, reader: PartitionReader) -> int | None:
        total = 0
        for partition in self.positions:
            high = reader.high_watermark(partition)
            if high is None:
                continue
            total += max(0, high - self.written.get(partition, 0))
        return total


def write_records(root: Path, topic: str, records: list[RawRecord]) -> tuple[int, int]:
    """Archive records of one partition, in offset order: one file per run of one day,
    written in offset order (so a crash leaves a prefix of the partition archived).
    Returns the files written and how many records were undecodable."""
    rows = Rows()
    days = [rows.add(topic, record) for record in records]
    files = start = 0
    for index in range(1, len(days) + 1):
        if index == len(days) or days[index] != days[start]:
            write_file(root, days[start], records[0].partition, rows.table(start, index))
            files += 1
            start = index
    return files, sum(1 for error in rows.columns["decode_error"] if error)


def archive_once(
    settings: Settings, *, archive: Path | None = None, on_progress: ProgressCallback | None = None
) -> ArchiveProgress:
    """Bring the archive up to the ends the log has now."""
    return Archiver(settings, archive=archive, on_progress=on_progress).run(once=True)


def bring_up_to_date(
    settings: Settings,
    *,
    archive: Path | None = None,
    timeout: float = 120.0,
    on_progress: ProgressCallback | None = None,
) -> ArchiveProgress | None:
    """Archive up to the partition ends the log has now, so an export sees everything
    recorded before it started. If an archiver is running on the archive, wait (at most
    `timeout` seconds) until its files reach those ends instead; returns None then."""
    try:
        return archive_once(settings, archive=archive, on_progress=on_progress)
    except ArchiveBusy:
        pass
    root = topic_root(archive or settings.archive_root, settings.events_topic)
    start = read_start(root)  # a partition with no files is archived up to its start
    ends = partition_ends(
        settings, settings.events_topic, archived_up_to(start, archive_files(root))
    )
    deadline = time.monotonic() + timeout
    while True:
        done = archived_up_to(start, archive_files(root))
        behind = {p: end for p, end in ends.items() if done.get(p, 0) < end}
        if not behind:
            return None
        if time.monotonic() > deadline:
            raise ArchiveError(
                f"the archiver running on {root} did not reach the ends of partitions "
                f"{sorted(behind)} of {settings.events_topic} within {timeout:.0f}s; is it "
                "stuck? (`agentlog archive status`)"
            )
        time.sleep(0.2)
