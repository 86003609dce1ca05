"""Is the log in Kafka the one the archive was written from?

A recreated topic, or a dev broker restarted with an empty memory, starts its offsets
again at 0; archiving it on top of the old files would mix two logs. So before it reads,
the archiver looks at the record at the last offset it archived of each partition: the
log must still hold that offset (or have deleted it by retention), with the same event.

The comparison is the projector's too (`agentlog.log_identity`); this module reads what
the archive expects and words the answer for the archive's user.
"""

from __future__ import annotations

import pyarrow.parquet as pq

from agentlog.analytics.archive_files import ArchiveFile, last_archived
from agentlog.errors import ArchiveError
from agentlog.log_identity import Verdict, what_the_log_holds
from agentlog.settings import Settings


def _archived_event_id(f: ArchiveFile) -> str | None:
    table = pq.read_table(f.path, columns=["offset", "event_id"])
    offsets = table.column("offset").to_pylist()
    return table.column("event_id")[offsets.index(f.last)].as_py()  # type: ignore[no-any-return]


def _different(topic: str, root: object, partition: int, why: str) -> ArchiveError:
    return ArchiveError(
        f"the archive in {root} was written from another log of {topic}: partition "
        f"{partition} {why} (a recreated topic, or a restarted dev broker?); archive this log "
        "into a new --dir"
    )


def check_same_log(
    settings: Settings,
    topic: str,
    root: object,
    files: list[ArchiveFile],
    partitions: int,
    timeout: float = 30.0,
) -> list[str]:
    """Raise ArchiveError if the log is not the one archived (the one log-identity
    check, `agentlog.log_identity`); returns notes (a last archived record that
    retention has deleted since cannot be compared)."""
    latest = last_archived(files)
    beyond = sorted(p for p in latest if p >= partitions)
    if beyond:
        raise _different(
            topic, root, beyond[0], f"is archived but the topic has {partitions} partitions now"
        )
    if not latest:
        return []
    expected = {p: (f.last, _archived_event_id(f)) for p, f in latest.items()}
    notes: list[str] = []
    for partition, here in sorted(what_the_log_holds(settings, topic, expected, timeout).items()):
        if here.verdict is Verdict.ENDS_BEFORE:
            why = f"ends at offset {here.at}, before offset {here.offset} that the archive holds"
            raise _different(topic, root, partition, why)
        if here.verdict is Verdict.STARTS_AGAIN:
            why = f"has no offset {here.offset} (the archive holds it)"
            raise _different(topic, root, partition, why)
        if here.verdict is Verdict.RETENTION:
            notes.append(
                f"{topic}[{partition}] no longer holds offset {here.offset} "
                "(retention): could not check it is the log archived"
            )
        elif here.verdict is Verdict.OTHER_EVENT:
            why = (
                f"holds event {here.event_id} at offset {here.offset}, where the archive "
                f"holds {here.expected_event}"
            )
            raise _different(topic, root, partition, why)
    return notes
