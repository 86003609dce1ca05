"""The durable local spool: encoded events wait here, in order, until Kafka has them.

Layout of the spool directory:

- `<index>.spool` segments (12 digits, oldest first), each at most a quarter of the
  spool's size (and at most SEGMENT_BYTES), so that shipped segments are deleted as
  shipping goes on. A
  segment starts with the 8-byte magic `AGSPOOL1`, then records:
  `u32 length | u32 CRC-32 of the body | body`, body = `i64 timestamp ms | u32 key length
  | key | value` (little-endian). A record is appended with one write(2), so it is in
  the kernel (and survives the recording process being killed) before the recording
  call returns.
- `position.state`: where shipping stands: everything before `committed` is on Kafka; a
  chunk being shipped is announced first as `shipping` (its end, and the partition
  offsets Kafka's log had reached before it), so that whoever ships next can look on the
  topic for the records of that chunk that did arrive instead of sending them twice.
  Rewritten in place, in space reserved when it was made (`_position_file`): shipping,
  which frees space, never needs any. (`position.json`, its older form, is read once.)
- `lock`: held (flock) by the one recorder using the spool; the kernel releases it when
  that process dies, however it dies.

Fsync policy: segments are fsynced every `spool_fsync_interval_ms` by the shipper
thread (0: after every record) and on close. A process crash loses nothing; a machine
crash or power loss loses at most the records of that interval. A record torn by such a
crash is only ever the last of the newest segment: it fails its length or checksum
check, is logged and cut off, never misread. An unreadable record inside an older
segment (disk corruption) ends that segment: the rest is copied to `<segment>.corrupt`
for inspection and logged.

A full disk: an event that cannot be written is reported (never raised into the agent),
and nothing the spool already holds is lost or left unshippable. A new segment is opened
before the old one is let go (a failed rotation keeps the old); once everything is
shipped, the active segment is emptied and renamed to the next index (no new space
needed), so a disk filled during an outage has room again as soon as Kafka has taken
the events. Every failure of the spool's files is a SpoolError.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentlog.errors import SpoolError
from agentlog.private_files import private_dir
from agentlog.producers._position_file import PositionFile, _StateTooLarge

LOG = logging.getLogger("agentlog.producers.spool")

MAGIC = b"AGSPOOL1"
SEGMENT_BYTES = 16 << 20
# The smallest segment, whatever the spool's size.
MIN_SEGMENT_BYTES = 64 << 10
# Once everything is shipped, an active segment holding more than this is emptied.
RECYCLE_BYTES = 64 << 10
_FRAME = struct.Struct("<II")  # body length, CRC-32 of the body
_BODY_HEAD = struct.Struct("<qI")  # timestamp ms, key length
_MAX_RECORD = 256 << 20  # a longer "length" can only be corruption
_SUFFIX = ".spool"


@dataclass(frozen=True, order=True)
class Position:
    """A place in the spool: a segment index and a byte offset in that segment."""

    segment: int
    offset: int

    def as_json(self) -> list[int]:
        return [self.segment, self.offset]

    @classmethod
    def from_json(cls, value: Any) -> Position:
        segment, offset = value
        return cls(int(segment), int(offset))


@dataclass(frozen=True)
class SpooledRecord:
    position: Position
    end: Position  # where the next record starts
    key: bytes
    value: bytes
    timestamp_ms: int


@dataclass(frozen=True)
class ShippingIntent:
    """A chunk that was handed to Kafka without every record being acknowledged yet."""

    end: Position
    floors: dict[int, int]  # partition -> an offset at or before the chunk's records


def frame(key: bytes, value: bytes, timestamp_ms: int) -> bytes:
    body = _BODY_HEAD.pack(timestamp_ms, len(key)) + key + value
    return _FRAME.pack(len(body), zlib.crc32(body)) + body


def _parse(data: bytes | memoryview, pos: int) -> tuple[int, bytes, bytes, int] | None:
    """(timestamp, key, value, next pos) of the complete, intact record at `pos`, or None
    when the bytes there are not one (cut short, or the checksum does not match)."""
    if pos + _FRAME.size > len(data):
        return None
    length, crc = _FRAME.unpack_from(data, pos)
    start = pos + _FRAME.size
    end = start + length
    if length < _BODY_HEAD.size or length > _MAX_RECORD or end > len(data):
        return None
    body = bytes(data[start:end])
    if zlib.crc32(body) != crc:
        return None
    timestamp, key_length = _BODY_HEAD.unpack_from(body, 0)
    if _BODY_HEAD.size + key_length > length:
        return None
    key_end = _BODY_HEAD.size + key_length
    return timestamp, body[_BODY_HEAD.size : key_end], body[key_end:], end


def _record_length_at(data: bytes | memoryview, pos: int) -> int | None:
    if pos + _FRAME.size > len(data):
        return None
    length: int = _FRAME.unpack_from(data, pos)[0]
    return _FRAME.size + length


def _failure(what: str, exc: OSError) -> SpoolError:
    return SpoolError(f"{what}: {exc.strerror or exc}")


class Spool:
    """Append encoded events (any thread), read them back in order (the shipper), and
    forget what Kafka has acknowledged."""

    def __init__(self, directory: Path, *, max_bytes: int, fsync_interval_ms: int) -> None:
        self.directory = Path(directory).expanduser().absolute()
        self.max_bytes = max_bytes
        self.segment_bytes = min(SEGMENT_BYTES, max(MIN_SEGMENT_BYTES, max_bytes // 4))
        self._fsync_every = fsync_interval_ms / 1000
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        try:
            private_dir(self.directory)  # events wait here: the user's alone (0700)
            self._lock_file = self._take_lock()
        except OSError as exc:
            raise SpoolError(
                f"cannot use the spool directory {self.directory}: {exc.strerror or exc}; "
                "set AGENTLOG_SPOOL_DIR to a writable directory"
            ) from None
        try:
            self._open()
        except OSError as exc:
            self._release_lock()
            raise SpoolError(
                f"cannot open the spool at {self.directory}: {exc.strerror or exc}"
                + (
                    " (the disk is full: free space there, or set AGENTLOG_SPOOL_DIR to "
                    "another disk)"
                    if exc.errno == errno.ENOSPC
                    else ""
                )
            ) from None
        except SpoolError:
            self._release_lock()
            raise

    def _open(self) -> None:
        self._positions = PositionFile(self.directory / "position.state")
        self.committed, self._intent = self._load_state()
        found = sorted(
            int(p.name[: -len(_SUFFIX)])
            for p in self.directory.glob(f"*{_SUFFIX}")
            if p.name[: -len(_SUFFIX)].isdigit()
        )
        for shipped in (s for s in found if s < self.committed.segment):
            # Shipped whole, but the process ended before deleting it.
            self._segment_path(shipped).unlink()
        self._segments = [s for s in found if s >= self.committed.segment]
        if not self._segments:
            self._segments = [self.committed.segment]
            self._create_segment(self.committed.segment)
        if self.committed.segment < self._segments[0]:
            self.committed = Position(self._segments[0], len(MAGIC))
        self._sizes = {s: self._segment_path(s).stat().st_size for s in self._segments}
        self._cut_torn_tail()
        self._active = self._segments[-1]
        self._fd = os.open(self._segment_path(self._active), os.O_WRONLY | os.O_APPEND)
        self._size = os.fstat(self._fd).st_size
        self._sizes[self._active] = self._size
        self._read_fds: dict[int, int] = {}
        self._dirty = False
        self._last_sync = time.monotonic()
        self.appended_since_open = 0
        self.committed = self._past_finished(self.committed)
        self._backlog = self._waiting_bytes()

    # -- opening ------------------------------------------------------------------------

    def _take_lock(self) -> Any:
        descriptor = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        handle = os.fdopen(descriptor, "a+")  # held while the spool is open
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise SpoolError(
                f"the spool directory {self.directory} is in use by another recorder "
                f"(pid {holder}); give each recorder process its own AGENTLOG_SPOOL_DIR"
            ) from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
        except OSError:
            pass  # the pid only helps the message above; a full disk must not stop us
        return handle

    def _release_lock(self) -> None:
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
            self._lock_file.close()
        except OSError:
            pass  # closing the descriptor releases the lock whatever happens

    def _load_state(self) -> tuple[Position, ShippingIntent | None]:
        start = Position(0, len(MAGIC))
        older = self.directory / "position.json"
        try:
            state = self._positions.load()
            if state is None and older.exists():
                state = json.loads(older.read_text())
                self._positions.save(state)
                older.unlink()
        except (ValueError, KeyError, TypeError) as exc:
            # Without a position every record left is shipped again; the intent being
            # lost too, records already on Kafka would be duplicated: say so.
            LOG.error(
                "spool %s: unreadable position file (%s); shipping from the oldest segment, "
                "events already on Kafka may be sent again",
                self.directory,
                exc,
            )
            return start, None
        if state is None:
            return start, None
        committed = Position.from_json(state["committed"])
        shipping = state.get("shipping")
        intent = None
        if shipping is not None:
            floors = {int(p): int(o) for p, o in shipping["floors"].items()}
            intent = ShippingIntent(Position.from_json(shipping["end"]), floors)
        return committed, intent

    def _segment_path(self, index: int) -> Path:
        return self.directory / f"{index:012d}{_SUFFIX}"

    def _create_segment(self, index: int) -> None:
        """A new segment holding its magic, or OSError and no file."""
        path = self._segment_path(index)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            if os.write(fd, MAGIC) != len(MAGIC):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            os.fsync(fd)
        except OSError:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        os.close(fd)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the new name itself survives a machine crash
        finally:
            os.close(dir_fd)

    def _cut_torn_tail(self) -> None:
        """A crash may leave the newest segment ending in part of a record: cut it off."""
        last = self._segments[-1]
        path = self._segment_path(last)
        data = path.read_bytes()
        if data[: len(MAGIC)] != MAGIC:
            if len(data) < len(MAGIC) and MAGIC.startswith(data):
                # Created but its magic not yet on disk: an empty segment.
                with open(path, "wb") as out:
                    out.write(MAGIC)
                self._sizes[last] = len(MAGIC)
                return
            raise SpoolError(f"{path} is not an agentlog spool segment; move it away")
        pos = self.committed.offset if self.committed.segment == last else len(MAGIC)
        while pos < len(data):
            parsed = _parse(data, pos)
            if parsed is None:
                break
            pos = parsed[3]
        if pos < len(data):
            LOG.warning(
                "spool %s: dropped %d bytes at the end of %s: a record cut short by a crash "
                "(never acknowledged to Kafka)",
                self.directory,
                len(data) - pos,
                path.name,
            )
            os.truncate(path, pos)
            self._sizes[last] = pos

    # -- appending ----------------------------------------------------------------------

    def append(self, key: bytes, value: bytes, timestamp_ms: int) -> bool:
        """Write one record; False (nothing written) when the spool is full. SpoolError
        (nothing written) when the disk refuses it."""
        record = frame(key, value, timestamp_ms)
        with self._lock:
            self._check_open()
            rotate = self._size + len(record) > self.segment_bytes and self._size > len(MAGIC)
            if self._backlog + len(record) + (len(MAGIC) if rotate else 0) > self.max_bytes:
                return False
            if rotate:
                self._rotate()
            try:
                written = os.write(self._fd, record)
                if written != len(record):  # a full disk: take the partial record back
                    os.ftruncate(self._fd, self._size)
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            except OSError as exc:
                raise _failure(
                    f"cannot write to the spool at {self._segment_path(self._active)}", exc
                ) from None
            self._size += len(record)
            self._sizes[self._active] = self._size
            self._backlog += len(record)
            self._dirty = True
            self.appended_since_open += 1
            if not self._fsync_every:
                self._fsync_active()
            self._changed.notify_all()
        return True

    def _fsync_active(self) -> None:
        try:
            os.fsync(self._fd)
        except OSError as exc:
            raise _failure(f"cannot fsync {self._segment_path(self._active)}", exc) from None
        self._dirty = False

    def _rotate(self) -> None:
        """Go on in a new segment: opened before the old one is let go, so that a failure
        (a full disk) leaves the old one in use and nothing changed."""
        if self._dirty:
            self._fsync_active()
        index = self._active + 1
        try:
            self._create_segment(index)
            fd = os.open(self._segment_path(index), os.O_WRONLY | os.O_APPEND)
        except OSError as exc:
            self._segment_path(index).unlink(missing_ok=True)
            raise _failure(
                f"cannot start the spool segment {self._segment_path(index)}", exc
            ) from None
        old, self._fd = self._fd, fd
        os.close(old)
        self._active = index
        self._segments.append(index)
        self._size = len(MAGIC)
        self._sizes[index] = self._size
        self._backlog += len(MAGIC)
        self._dirty = False

    def sync_if_due(self) -> None:
        with self._lock:
            due = time.monotonic() - self._last_sync >= self._fsync_every
            if self._fd >= 0 and self._dirty and due:
                self._fsync_active()
                self._last_sync = time.monotonic()

    # -- reading ------------------------------------------------------------------------

    @property
    def end(self) -> Position:
        with self._lock:
            return Position(self._active, self._size)

    @property
    def disk_bytes(self) -> int:
        """Bytes of the segments on disk, shipped parts included."""
        with self._lock:
            return sum(self._sizes.values())

    def backlog_bytes(self) -> int:
        """Bytes of records not yet on Kafka (and the segments holding them): what counts
        against `max_bytes`."""
        with self._lock:
            return self._backlog

    def _waiting_bytes(self) -> int:
        waiting = 0
        for segment in self._segments:
            if segment >= self.committed.segment:
                start = self.committed.offset if segment == self.committed.segment else 0
                waiting += max(0, self._sizes[segment] - start)
        return waiting

    def _past_finished(self, position: Position) -> Position:
        """`position`, or the start of the next segment when it is at the end of a finished
        one (so that an empty newest segment does not look unshipped)."""
        while position.segment != self._active and position.offset >= self._sizes.get(
            position.segment, 0
        ):
            later = [s for s in self._segments if s > position.segment]
            if not later:
                break
            position = Position(later[0], len(MAGIC))
        return position

    def is_drained(self) -> bool:
        with self._lock:
            return self.committed >= Position(self._active, self._size)

    def wait_for_records(self, after: Position, timeout: float) -> None:
        with self._lock:
            if Position(self._active, self._size) <= after:
                self._changed.wait(timeout)

    def wait_drained(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while self.committed < Position(self._active, self._size):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def read(
        self, start: Position, *, max_records: int, max_bytes: int, until: Position | None = None
    ) -> list[SpooledRecord]:
        """Records from `start` (a record boundary) on, in order, up to the current end
        (or `until`): at most `max_records`, and about `max_bytes`."""
        self._check_open()
        try:
            return self._read(start, max_records, max_bytes, until)
        except OSError as exc:
            raise _failure(f"cannot read the spool at {self.directory}", exc) from None

    def _read(
        self, start: Position, max_records: int, max_bytes: int, until: Position | None
    ) -> list[SpooledRecord]:
        with self._lock:
            end = Position(self._active, self._size)
            segments = list(self._segments)
        if until is not None:
            end = min(end, until)
        records: list[SpooledRecord] = []
        taken = 0
        segment, offset = start.segment, start.offset
        while len(records) < max_records and taken < max_bytes and Position(segment, offset) < end:
            limit = end.offset if segment == end.segment else self._file_size(segment)
            if offset >= limit:
                later = [s for s in segments if s > segment]
                if not later:
                    break
                segment, offset = later[0], len(MAGIC)
                continue
            fd = self._read_fd(segment)
            block = os.pread(fd, min(limit - offset, max(max_bytes - taken, 1 << 16)), offset)
            need = _record_length_at(block, 0)
            if need is not None and len(block) < need <= limit - offset:
                block = os.pread(fd, need, offset)  # one record longer than the block
            pos = 0
            while len(records) < max_records and taken < max_bytes:
                parsed = _parse(block, pos)
                if parsed is None:
                    break
                timestamp, key, value, next_pos = parsed
                records.append(
                    SpooledRecord(
                        Position(segment, offset + pos),
                        Position(segment, offset + next_pos),
                        key,
                        value,
                        timestamp,
                    )
                )
                taken += next_pos - pos
                pos = next_pos
            if pos == 0:
                # Appends are complete before `end` moves past them: these bytes are not a
                # record (disk corruption). Keep them aside and go on after them.
                self._unreadable(segment, offset, limit)
                pos = limit - offset
            offset += pos
        return records

    def _file_size(self, segment: int) -> int:
        return os.fstat(self._read_fd(segment)).st_size

    def _read_fd(self, segment: int) -> int:
        fd = self._read_fds.get(segment)
        if fd is None:
            fd = os.open(self._segment_path(segment), os.O_RDONLY)
            self._read_fds[segment] = fd
        return fd

    def _unreadable(self, segment: int, offset: int, limit: int) -> None:
        path = self._segment_path(segment)
        kept = path.with_name(f"{path.name}.{offset}.corrupt")
        where = kept.name
        try:
            kept.write_bytes(os.pread(self._read_fd(segment), limit - offset, offset))
        except OSError as exc:  # a full disk: shipping must go on all the same
            kept.unlink(missing_ok=True)
            where = f"nowhere ({exc.strerror}: they are lost)"
        LOG.error(
            "spool %s: %d unreadable bytes in %s from offset %d (length or checksum wrong); "
            "copied to %s, shipping goes on after them",
            self.directory,
            limit - offset,
            path.name,
            offset,
            where,
        )

    # -- shipping progress --------------------------------------------------------------

    @property
    def intent(self) -> ShippingIntent | None:
        return self._intent

    def announce(self, intent: ShippingIntent) -> None:
        """Record, before a chunk is handed to Kafka, where it ends and where the log stood."""
        self._check_open()
        self._save(self.committed, intent)
        self._intent = intent

    def _check_open(self) -> None:
        # A shipper thread that outlived close() must not write for the next owner.
        if self._fd < 0:
            raise SpoolError(f"the spool at {self.directory} is closed")

    def commit(self, position: Position) -> Position:
        """Everything before `position` is on Kafka: forget it, and free its space. Returns
        where shipping goes on (past `position` when the active segment was emptied).
        (Shipper thread only.)"""
        self._check_open()
        intent = self._intent
        if intent is not None and intent.end <= position:
            intent = None  # else part of an announced chunk is still unconfirmed
        with self._lock:
            position = self._past_finished(position)
            recycle = (
                intent is None
                and position == Position(self._active, self._size)
                and self._size - len(MAGIC) >= min(RECYCLE_BYTES, self.segment_bytes // 4)
            )
            if recycle:
                self._recycle()
                position = self.committed
            else:
                self._save(position, intent)
                self.committed, self._intent = position, intent
            finished = [s for s in self._segments if s < position.segment and s != self._active]
            self._backlog = self._waiting_bytes()
        for segment in finished:  # outside the lock: appends need not wait for it
            fd = self._read_fds.pop(segment, None)
            if fd is not None:
                os.close(fd)
            try:
                self._segment_path(segment).unlink(missing_ok=True)
            except OSError as exc:  # behind the position: the next start deletes it
                LOG.warning("spool %s: cannot delete %s: %s", self.directory, segment, exc)
        with self._lock:
            self._segments = [s for s in self._segments if s not in finished]
            for segment in finished:
                self._sizes.pop(segment, None)
            self._changed.notify_all()
        return position

    def _recycle(self) -> None:
        """Everything is shipped: empty the active segment and rename it to the next index,
        freeing its space without needing any. The position moves first, so a crash at any
        step leaves the old index behind the position: deleted at the next start as
        shipped (never shipped again, and nothing unshipped in it)."""
        old, new = self._active, self._active + 1
        moved = Position(new, len(MAGIC))
        self._save(moved, None)
        try:
            os.ftruncate(self._fd, len(MAGIC))
        except OSError as exc:
            self._save(Position(old, self._size), None)  # the position back where it was
            raise _failure(f"cannot empty the shipped {self._segment_path(old)}", exc) from None
        self._size = self._sizes[old] = len(MAGIC)
        try:
            os.rename(self._segment_path(old), self._segment_path(new))
        except OSError as exc:
            # Emptied but not renamed: go on appending to it, from its start.
            self.committed, self._intent = Position(old, len(MAGIC)), None
            self._save(self.committed, None)
            raise _failure(f"cannot rename the shipped {self._segment_path(old)}", exc) from None
        fd = self._read_fds.pop(old, None)
        if fd is not None:
            os.close(fd)
        self.committed, self._intent = moved, None
        self._segments = [s for s in self._segments if s != old] + [new]
        self._sizes.pop(old, None)
        self._active, self._size = new, len(MAGIC)
        self._sizes[new] = self._size

    def _save(self, committed: Position, intent: ShippingIntent | None) -> None:
        state: dict[str, Any] = {"committed": committed.as_json(), "shipping": None}
        if intent is not None:
            state["shipping"] = {
                "end": intent.end.as_json(),
                "floors": {str(p): o for p, o in intent.floors.items()},
            }
        try:
            self._positions.save(state)
        except (OSError, _StateTooLarge) as exc:
            detail = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise SpoolError(
                f"cannot record the shipping position in {self._positions.path}: {detail}"
            ) from None

    def close(self) -> str | None:
        """Sync and let go; never raises: returns what went wrong, if anything (the records
        written stay in the segments for the next recorder)."""
        with self._lock:
            if self._fd < 0:
                return None
            problem = None
            try:
                os.fsync(self._fd)
            except OSError as exc:
                problem = f"cannot fsync {self._segment_path(self._active)}: {exc.strerror}"
            for fd in [self._fd, *self._read_fds.values()]:
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._fd = -1
            self._read_fds.clear()
            try:
                self._positions.close()
            except OSError:
                pass
            self._release_lock()
            return problem
