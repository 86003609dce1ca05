"""Is the log in Kafka the one the archive was written from?

A recreated topic, or a dev broker restarted with an empty memory, starts its offsets
again at 0; archiving it on top of the old files would mix two logs. So before it reads,
the archiver looks at the record at the last offset it archived of each partition: the
log must still hold that offset (or have deleted it by retention), with the same event.

The comparison, and its wording, is the projector's too (`agentlog.log_identity`); this
module reads what the archive expects.
"""

from __future__ import annotations

import pyarrow.parquet as pq

from agentlog.analytics.archive_files import ArchiveFile, last_archived
from agentlog.errors import ArchiveError
from agentlog.log_identity import (
    REFUSED,
    Verdict,
    another_log,
    archive,
    what_the_log_holds,
    worded,
)
from agentlog.settings import Settings


def _archived_event_id(f: ArchiveFile) -> str | None:
    table = pq.read_table(f.path, columns=["offset", "event_id"])
    offsets = table.column("offset").to_pylist()
    return table.column("event_id")[offsets.index(f.last)].as_py()  # type: ignore[no-any-return]


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
        why = f"partition {beyond[0]} is archived but the topic has {partitions} partitions now"
        raise ArchiveError(another_log(archive(root), topic, why))
    if not latest:
        return []
    expected = {p: (f.last, _archived_event_id(f)) for p, f in latest.items()}
    notes: list[str] = []
    applier = archive(root)
    for partition, here in sorted(what_the_log_holds(settings, topic, expected, timeout).items()):
        if here.verdict in REFUSED:
            raise ArchiveError(worded(here, topic, partition, applier))
        if here.verdict is Verdict.RETENTION:
            notes.append(worded(here, topic, partition, applier))
    return notes
