"""An archive written without a broker: an `OfflineLog`'s records through the archiver's
own writing, for the fast tests of exports."""

from __future__ import annotations

from pathlib import Path

from agentlog.analytics.archive_files import topic_root
from agentlog.analytics.archiver import write_records
from agentlog.analytics.columns import RawRecord
from helpers.offline_log import TOPIC, OfflineLog


def archive_offline(log: OfflineLog, archive: Path) -> Path:
    """Archive every record of the log; returns the topic's root folder."""
    root = topic_root(archive, TOPIC)
    partitions = sorted({r.partition for r in log.records})
    for partition in partitions:
        records = sorted(
            (r for r in log.records if r.partition == partition), key=lambda r: r.offset
        )
        write_records(
            root, TOPIC, [RawRecord(r.partition, r.offset, r.timestamp, r.value) for r in records]
        )
    return root
