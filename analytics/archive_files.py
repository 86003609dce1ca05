"""The archive on disk: Parquet files whose names are the offsets they hold.

    ARCHIVE/<topic>/date=YYYY-MM-DD/p<partition>-<first offset>-<last offset>.parquet

A file holds records of one partition, one day (UTC, by event time), offsets first..last
(of that day; a day's records of a partition are contiguous runs of offsets, and each run
gets a file of its own). Files appear whole: written under a hidden temporary name, synced,
then renamed. So the files present *are* the archiver's stored offsets: it resumes every
partition at the offset after the highest `last` of its files, and a crash before a rename
leaves nothing a reader or a restart would see. Compaction writes the merged file first and
deletes the parts after a grace period; readers dedupe by (topic, partition, offset), so a
moment with both is harmless.
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from agentlog.errors import ArchiveBusy
from agentlog.private_files import FILE_MODE, private_dir, temporary_beside

_NAME = re.compile(r"^p(\d+)-(\d{20})-(\d{20})\.parquet$")
_DAY_DIR = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
TEMPORARY_PREFIX = ".partial-"
# Parts of a compacted file stay this long, for readers that listed them just before.
COMPACTION_GRACE_SECONDS = 60.0


def topic_root(archive: Path, topic: str) -> Path:
    return archive / topic


def file_name(partition: int, first: int, last: int) -> str:
    return f"p{partition}-{first:020d}-{last:020d}.parquet"


@dataclass(frozen=True, order=True)
class ArchiveFile:
    day: str
    partition: int
    first: int
    last: int
    path: Path

    @property
    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0


def archive_files(root: Path) -> list[ArchiveFile]:
    """The finished files under one topic's root, in (day, partition, first) order."""
    found = []
    if not root.is_dir():
        return []
    for day_dir in root.iterdir():
        day = _DAY_DIR.match(day_dir.name)
        if day is None or not day_dir.is_dir():
            continue
        for path in day_dir.iterdir():
            name = _NAME.match(path.name)
            if name is not None:
                partition, first, last = (int(g) for g in name.groups())
                found.append(ArchiveFile(day.group(1), partition, first, last, path))
    return sorted(found)


def next_offsets(files: list[ArchiveFile]) -> dict[int, int]:
    """Partition -> the first offset not archived yet (the files are the stored offsets)."""
    ends: dict[int, int] = {}
    for f in files:
        ends[f.partition] = max(ends.get(f.partition, 0), f.last + 1)
    return ends


def last_archived(files: list[ArchiveFile]) -> dict[int, ArchiveFile]:
    """Partition -> the file holding its highest archived offset."""
    latest: dict[int, ArchiveFile] = {}
    for f in files:
        if f.partition not in latest or f.last > latest[f.partition].last:
            latest[f.partition] = f
    return latest


def write_file(root: Path, day: str, partition: int, table: pa.Table) -> ArchiveFile:
    """Write `table` (rows of one partition and day, in offset order) so that it appears
    whole under its final name, or not at all."""
    offsets = table.column("offset")
    first, last = offsets[0].as_py(), offsets[-1].as_py()
    folder = root / f"date={day}"
    private_dir(folder)
    final = folder / file_name(partition, first, last)
    partial = temporary_beside(final, prefix=TEMPORARY_PREFIX)
    with open(partial, "wb") as sink:
        pq.write_table(table, sink, compression="snappy", row_group_size=256_000)
        sink.flush()
        os.fsync(sink.fileno())
    os.replace(partial, final)
    return ArchiveFile(day, partition, first, last, final)


def read_file(path: Path) -> pa.Table:
    return pq.read_table(path)


def remove_leftovers(root: Path) -> None:
    """Delete what a crash left: temporary files, and parts of a compacted file that
    survived the merged one's rename."""
    if not root.is_dir():
        return
    for day_dir in root.iterdir():
        if day_dir.is_dir():
            for path in day_dir.glob(f"{TEMPORARY_PREFIX}*"):
                path.unlink(missing_ok=True)
    for f in redundant(archive_files(root)):
        f.path.unlink(missing_ok=True)


def redundant(files: list[ArchiveFile]) -> list[ArchiveFile]:
    """Files whose offsets another file of the same day and partition covers (the parts of
    a compaction, once the merged file exists)."""
    extra = []
    groups: dict[tuple[str, int], list[ArchiveFile]] = {}
    for f in files:
        groups.setdefault((f.day, f.partition), []).append(f)
    for group in groups.values():
        for f in group:
            if any(
                o.first <= f.first and f.last <= o.last and (o.first, o.last) != (f.first, f.last)
                for o in group
            ):
                extra.append(f)
    return extra


class Compactor:
    """Merges runs of small files of one day and partition into one file."""

    def __init__(self, root: Path, *, min_files: int, small_bytes: int = 64 << 20) -> None:
        self.root = root
        self.min_files = min_files
        self.small_bytes = small_bytes
        # (when to delete, files) of compactions whose parts wait out the grace period
        self.pending: list[tuple[float, list[ArchiveFile]]] = []

    def compact(self, files: list[ArchiveFile], *, now: float | None = None) -> int:
        """Merge every run of at least `min_files` small files; returns how many files
        were merged. Parts are deleted once the grace period has passed."""
        now = time.monotonic() if now is None else now
        self.delete_due(now)
        waiting = {f.path for _, parts in self.pending for f in parts}
        groups: dict[tuple[str, int], list[ArchiveFile]] = {}
        for f in files:
            if f.path not in waiting:
                groups.setdefault((f.day, f.partition), []).append(f)
        merged = 0
        for (day, partition), group in groups.items():
            small = [f for f in group if f.size < self.small_bytes]
            if len(small) < self.min_files:
                continue
            table = pa.concat_tables([read_file(f.path) for f in small])
            table = _unique_offsets(table)
            write_file(self.root, day, partition, table)
            self.pending.append((now + COMPACTION_GRACE_SECONDS, small))
            merged += len(small)
        return merged

    def delete_due(self, now: float, *, all_of_them: bool = False) -> None:
        keep = []
        for due, parts in self.pending:
            if all_of_them or due <= now:
                for f in parts:
                    f.path.unlink(missing_ok=True)
            else:
                keep.append((due, parts))
        self.pending = keep


def _unique_offsets(table: pa.Table) -> pa.Table:
    """Rows in offset order, each offset once (overlapping files hold the same record)."""
    table = table.sort_by("offset")
    offsets = table.column("offset").to_pylist()
    keep = [True, *(after != before for before, after in zip(offsets, offsets[1:], strict=False))]
    return table if all(keep) else table.filter(pa.array(keep))


@contextmanager
def writer_lock(root: Path) -> Iterator[None]:
    """One archiver writes a topic's archive at a time; readers take no lock."""
    private_dir(root, tighten=True)
    path = root / ".archiver.lock"
    with os.fdopen(
        os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE), "a+"
    ) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ArchiveBusy(
                f"{holder} is archiving into {root}; stop it first, or read the archive "
                "without archiving"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"archiver pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
