"""Where an archive starts, when it does not start at the beginning of the log.

`agentlog archive run --from latest|TIME` makes an archive of what follows a point: the
events before it are never archived. So that nobody takes such an archive for the whole
log, the start is kept with it, beside its files:

    ARCHIVE/<topic>/start.json   {"from": ..., "topic_id": ..., "offsets": {partition: first}}

written once, when the archive is made (an archive that has files, or a start, keeps it:
`--from` applies only to a new archive), and read by the archiver (a partition that has
no files yet starts at its start offset, not at the beginning), by `archive status` and
by the exports, which say that the archive is partial. An archive made from the
beginning has no start file. The file is read as untrusted input: anything but the shape
above is one clear error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from agentlog.analytics.archive_files import ArchiveFile, next_offsets
from agentlog.errors import ArchiveError
from agentlog.log_identity import NEW_ARCHIVE
from agentlog.private_files import replaced_whole
from agentlog.settings import Settings
from agentlog.start_from import StartFrom, first_offsets
from agentlog.topics import topic_identity

START_FILE = "start.json"
# A start file is a few bytes a partition; more than this is not one.
_MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class ArchiveStart:
    """The archive holds each partition's records from `offsets[partition]` on."""

    asked: str  # the --from it was made with: latest, or a time
    offsets: dict[int, int]
    topic_id: str | None = None  # the log it was taken from (None: the broker names none)

    @property
    def late(self) -> dict[int, int]:
        """The partitions whose archive starts after their beginning (offset > 0)."""
        return {p: o for p, o in sorted(self.offsets.items()) if o > 0}

    def partial_note(self) -> str | None:
        """One line saying what the archive lacks, if it lacks anything."""
        if not self.late:
            return None
        where = ", ".join(f"partition {p} before offset {o:,}" for p, o in self.late.items())
        return (
            f"PARTIAL: this archive starts after the beginning of the log (--from "
            f"{self.asked}); events before its start were never archived ({where})"
        )


def archived_up_to(start: ArchiveStart | None, files: list[ArchiveFile]) -> dict[int, int]:
    """Partition -> the first offset not archived yet: after its files, else its start."""
    return {**(start.offsets if start else {}), **next_offsets(files)}


def start_path(root: Path) -> Path:
    return root / START_FILE


def read_start(root: Path) -> ArchiveStart | None:
    """The start kept with the archive of one topic (`root`), or None: from the beginning."""
    path = start_path(root)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(_MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ArchiveError(f"cannot read the archive's start {path}: {exc.strerror}") from None
    try:
        if len(raw) > _MAX_BYTES:
            raise ValueError("too large")
        found = json.loads(raw)
        asked, offsets, topic_id = found["from"], found["offsets"], found.get("topic_id")
        if not isinstance(asked, str) or not isinstance(offsets, dict):
            raise ValueError("wrong types")
        if topic_id is not None and not isinstance(topic_id, str):
            raise ValueError("wrong topic id")
        parsed = {int(p): o for p, o in offsets.items()}
        if any(type(o) is not int or o < 0 or p < 0 for p, o in parsed.items()):
            raise ValueError("offsets are not whole numbers")
    except (ValueError, KeyError, TypeError, RecursionError):
        raise ArchiveError(
            f'{path} is not an archive start (expected {{"from": ..., "offsets": '
            "{partition: offset}}); restore it, or archive into a new --dir"
        ) from None
    return ArchiveStart(asked, parsed, topic_id)


def write_start(root: Path, start: ArchiveStart) -> None:
    """Keep `start` with the archive (whole or not at all, the user's alone)."""
    body = {
        "from": start.asked,
        "topic_id": start.topic_id,
        "offsets": {str(p): o for p, o in sorted(start.offsets.items())},
    }
    with replaced_whole(start_path(root)) as sink:
        sink.write(json.dumps(body, indent=2).encode() + b"\n")


def start_archive(
    settings: Settings,
    topic: str,
    root: Path,
    partitions: int,
    start: StartFrom,
    *,
    new: bool,
) -> ArchiveStart | None:
    """The start of the archive in `root`: the one kept with it; else, for a `new`
    archive asked to start later than the beginning, its first offsets (found as a new
    consumer group's are), kept with it before anything is archived."""
    kept = read_start(root)
    if kept is None and (not new or start.kind == "earliest"):
        return None
    topic_id = topic_identity(settings, topic).topic_id
    if kept is not None:
        if kept.topic_id and topic_id and kept.topic_id != topic_id:
            raise ArchiveError(
                f"the archive in {root} was started on another log of {topic} (topic id "
                f"{kept.topic_id}, now {topic_id}: a recreated topic, or a restarted dev "
                f"broker?); {NEW_ARCHIVE}"
            )
        return kept
    offsets = first_offsets(settings, topic, list(range(partitions)), start)
    made = ArchiveStart(start.option, offsets, topic_id)
    write_start(root, made)
    return made
