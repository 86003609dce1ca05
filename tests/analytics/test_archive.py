"""The Parquet archive holds every record of the log exactly once, by day, whatever
happens to the archiver (a crash, a restart, compaction), and refuses another log."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import orjson
import pyarrow.dataset as ds
import pytest
from confluent_kafka import Producer
from helpers import wait_for
from helpers.cli import agentlog, agentlog_process
from helpers.kafka_python_reader import read_all
from helpers.workloads import record

from agentlog.analytics.archive_files import archive_files, topic_root
from agentlog.analytics.archiver import Archiver
from agentlog.errors import ArchiveError
from agentlog.kafka_config import producer_config
from agentlog.reader import PartitionReader, partition_offset, read_partitions
from agentlog.serde import decode
from agentlog.settings import Settings
from agentlog.topics import create_topics


def archived_rows(root: Path) -> list[dict]:
    """Every row of the archive, `date` from the folder, ordered by (partition, offset)."""
    if not any(root.glob("date=*/*.parquet")):
        return []
    dataset = ds.dataset(root, format="parquet", partitioning="hive", exclude_invalid_files=False)
    rows = dataset.to_table().to_pylist()
    return sorted(rows, key=lambda r: (r["partition"], r["offset"]))


def assert_archive_is_the_log(settings: Settings, root: Path) -> list[dict]:
    """Each record of the topic (read by an independent client) once in the archive,
    in the folder of its day, with its envelope and payload."""
    log = read_all(settings.bootstrap_servers, settings.events_topic)
    rows = archived_rows(root)
    assert [(r["partition"], r["offset"]) for r in rows] == [(m.partition, m.offset) for m in log]
    for message, row in zip(log, rows, strict=True):
        assert row["topic"] == settings.events_topic
        try:
            decoded = decode(message.value)
        except Exception:
            assert row["decode_error"] and row["raw_value"] == message.value
            continue
        assert row["event_id"] == decoded["event_id"]
        assert row["conversation_id"] == decoded["conversation_id"]
        occurred = row["occurred_at"]
        assert row["date"] == occurred.strftime("%Y-%m-%d")
        assert occurred.timestamp() * 1_000_000 == pytest.approx(decoded["occurred_at"], abs=1)
        name, body = decoded["payload"]
        assert orjson.loads(row["payload_json"]) == body
        assert row["tool_call_id"] == body.get("tool_call_id")
    return rows


def test_every_record_once_by_day_and_only_new_ones_later(
    settings: Settings, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    root = topic_root(archive, settings.events_topic)
    written = record(settings, 12)
    # A record that is no agentlog event is archived too, as bytes with the reason.
    producer = Producer(producer_config(settings))
    producer.produce(settings.events_topic, b"not avro", key=b"conv-x")
    producer.flush(10)

    first = Archiver(settings, archive=archive).run(once=True)
    assert first.archived == written + 1 and first.undecodable == 1
    rows = assert_archive_is_the_log(settings, root)
    assert sum(1 for r in rows if r["decode_error"]) == 1

    again = Archiver(settings, archive=archive).run(once=True)
    assert again.archived == 0 and again.files == 0

    more = record(settings, 5, seed=2)
    later = Archiver(settings, archive=archive).run(once=True)
    assert later.archived == more
    assert_archive_is_the_log(settings, root)
    # File names are the offsets they hold: runs of each partition follow each other.
    by_partition: dict[int, list] = {}
    for f in archive_files(root):
        by_partition.setdefault(f.partition, []).append(f)
    for files in by_partition.values():
        files.sort(key=lambda f: f.first)
        assert files[0].first == 0
        for before, after in zip(files, files[1:], strict=False):
            assert after.first > before.last


def test_a_killed_archiver_resumes_without_loss_or_repeat(
    settings: Settings, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    root = topic_root(archive, settings.events_topic)
    record(settings, 40)
    base = ("--bootstrap", settings.bootstrap_servers, "--topic-prefix", settings.topic_prefix)
    follower = agentlog_process(
        *base,
        "archive",
        "run",
        "--dir",
        str(archive),
        env={"AGENTLOG_ARCHIVE_FLUSH_SECONDS": "0.2", "AGENTLOG_ARCHIVE_BATCH_RECORDS": "50"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: len(archive_files(root)) >= 3, 60, "the archiver's first 3 files")
    finally:
        follower.send_signal(signal.SIGKILL)
        follower.wait(timeout=30)
    # A write interrupted before its rename leaves a temporary file that nobody reads.
    day = next(root.glob("date=*"))
    (day / ".partial-1-p0-00000000000000000000-00000000000000000099.parquet").write_bytes(b"x")
    record(settings, 10, seed=3)
    Archiver(settings, archive=archive).run(once=True)
    assert not list(root.glob("date=*/.partial-*"))
    assert_archive_is_the_log(settings, root)


def test_small_files_are_compacted_and_readers_see_each_record_once(
    settings: Settings, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    root = topic_root(archive, settings.events_topic)
    small = settings.with_overrides(archive_compact_files=3)
    for seed in range(5):
        record(settings, 3, seed=seed)
        Archiver(settings, archive=archive).run(once=True)
    before = len(archive_files(root))
    Archiver(small, archive=archive).run(once=True)
    after = archive_files(root)
    assert len(after) < before
    days_partitions = {(f.day, f.partition) for f in after}
    assert len(after) == len(days_partitions)  # one file per day and partition
    assert_archive_is_the_log(settings, root)


def test_records_a_fetch_left_out_are_read_again_and_archived(
    settings: Settings, tmp_path: Path
) -> None:
    """What Tansu 0.6 did to tool workers under load, handed to the archiver on purpose:
    records 3..6 of a partition left out of what a fetch handed. They are read again and
    archived in order, not passed over (nor noted as lost)."""
    record(settings, 4)
    (partition,) = list(read_partitions(settings, settings.events_topic))[:1]
    number = partition_offset(partition)[0]
    handed = list(read_partitions(settings, settings.events_topic, partitions=[number]))
    assert len(handed) >= 8
    archiver = Archiver(settings, archive=tmp_path / "archive")
    root = topic_root(tmp_path / "archive", settings.events_topic)
    with PartitionReader(settings, settings.events_topic) as reader:
        archiver.positions[number] = 0
        archiver.buffers[number] = []
        archiver._take(reader, handed[:3] + handed[7:])
        archiver._write()
    assert [row["offset"] for row in archived_rows(root)] == list(range(len(handed)))
    assert archiver.progress.notes == []


def test_another_log_under_the_same_name_is_refused(settings: Settings, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    record(settings, 6)
    Archiver(settings, archive=archive).run(once=True)
    # The same topic name on a fresh log: other topics stand in for a recreated one.
    fresh = settings.with_overrides(topic_prefix=f"{settings.topic_prefix}again.")
    create_topics(fresh)
    record(fresh, 2, seed=9)
    old_root = topic_root(archive, settings.events_topic)
    new_root = topic_root(archive, fresh.events_topic)
    new_root.parent.mkdir(parents=True, exist_ok=True)
    old_root.rename(new_root)
    with pytest.raises(ArchiveError, match="another log") as raised:
        Archiver(fresh, archive=archive).run(once=True)
    assert "new --dir" in str(raised.value)
    run = agentlog(
        "--bootstrap",
        fresh.bootstrap_servers,
        "--topic-prefix",
        fresh.topic_prefix,
        "archive",
        "run",
        "--once",
        "--dir",
        str(archive),
        state_dir=tmp_path,
    )
    assert run.code == 1 and run.err.startswith("error: the archive in")
    assert "another log" in run.err
    # `archive status` reports the same, not "archived up to N of 0" as if all were well.
    status = agentlog(
        "--bootstrap", fresh.bootstrap_servers, "--topic-prefix", fresh.topic_prefix,
        "archive", "status", "--dir", str(archive),
        state_dir=tmp_path,
    )  # fmt: skip
    assert status.code == 1, status.out
    assert status.err.startswith("error: the archive in") and "another log" in status.err
    assert "not archived yet" not in status.out
