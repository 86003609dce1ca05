"""Replay reads the Parquet archive when Kafka no longer holds a conversation: the same
events (with their original topic, partition and offset) and the same state as replay
from Kafka gave, on every engine; and it says where they came from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition
from helpers import Capabilities
from helpers.cli import agentlog
from helpers.offline_archive import archive_offline
from helpers.offline_log import TOPIC, events_of, simulated_log
from helpers.workloads import created_again, record

from agentlog.analytics import ParquetArchive, open_views
from agentlog.analytics.archive_files import topic_root
from agentlog.analytics.archiver import Archiver, write_records
from agentlog.analytics.columns import RawRecord
from agentlog.consumers import BUILT_IN, ProjectionRunner, open_sink
from agentlog.kafka_config import admin_client
from agentlog.reader import partition_ends
from agentlog.replay import ConversationNotFound, ReplayError, replay_conversation
from agentlog.replay.state import conversation_state
from agentlog.settings import Settings

OFFLINE = Settings(topic_prefix="offline.", bootstrap_servers="127.0.0.1:9")
assert OFFLINE.events_topic == TOPIC


def test_the_archive_gives_back_the_events_the_log_gave(tmp_path: Path) -> None:
    log = simulated_log(8)
    archive_offline(log, tmp_path)
    archive = ParquetArchive(tmp_path)
    conversations = {r.key.decode() for r in log.records}
    for conversation_id in conversations:
        from_log = events_of(r for r in log.records if r.key.decode() == conversation_id)
        assert archive.conversation_events(TOPIC, conversation_id) == from_log
    assert archive.conversation_events(TOPIC, "nobody") == []


def test_a_compacted_archive_still_gives_each_offset_once(tmp_path: Path) -> None:
    log = simulated_log(4)
    root = archive_offline(log, tmp_path)
    # A compaction's merged file beside its parts (the grace period): the same offsets twice.
    for partition in {r.partition for r in log.records}:
        records = sorted(
            (r for r in log.records if r.partition == partition), key=lambda r: r.offset
        )
        (root.parent / "merged").mkdir(exist_ok=True)
        merged = root.parent / "merged"
        write_records(
            merged, TOPIC, [RawRecord(r.partition, r.offset, r.timestamp, r.value) for r in records]
        )
        for day in merged.iterdir():
            for f in day.iterdir():
                target = root / day.name / f.name
                if not target.exists():
                    f.rename(target)
    conversation_id = log.records[0].key.decode()
    expected = events_of(r for r in log.records if r.key.decode() == conversation_id)
    assert ParquetArchive(tmp_path).conversation_events(TOPIC, conversation_id) == expected


def test_replay_from_the_archive_alone_folds_the_same_state(tmp_path: Path) -> None:
    log = simulated_log(6)
    archive_offline(log, tmp_path)
    conversation_id = log.records[-1].key.decode()
    expected = events_of(r for r in log.records if r.key.decode() == conversation_id)
    notes: list[str] = []
    replayed = replay_conversation(
        OFFLINE,
        conversation_id,
        source="archive",
        archive=ParquetArchive(tmp_path),
        on_note=notes.append,
    )
    assert replayed.events == expected
    assert replayed.state == conversation_state(expected)
    assert replayed.location.method == "archive"
    assert notes == [f"read from the archive at {tmp_path}, as --source archive asks"]
    # A stop works on archived events as on Kafka's.
    middle = expected[len(expected) // 2].offset
    stopped = replay_conversation(
        OFFLINE,
        conversation_id,
        source="archive",
        archive=ParquetArchive(tmp_path),
        until_offset=middle,
    )
    assert stopped.events == [e for e in expected if e.offset <= middle]


def test_replay_from_the_archive_names_what_is_missing(tmp_path: Path) -> None:
    archive_offline(simulated_log(2), tmp_path)
    with pytest.raises(ConversationNotFound, match=f"in the archive at {tmp_path}"):
        replay_conversation(OFFLINE, "nobody", source="archive", archive=ParquetArchive(tmp_path))
    with pytest.raises(ReplayError, match="needs an archive"):
        replay_conversation(OFFLINE, "nobody", source="archive")
    assert topic_root(tmp_path, TOPIC).is_dir()


# On real brokers: archive, make Kafka lose the conversation, replay.


def _recorded_conversations(settings: Settings, archive: Path) -> list[str]:
    """Some conversations recorded and archived; their ids, busiest first."""
    record(settings, 6, seed=5)
    Archiver(settings, archive=archive, idle_timeout=30).run(once=True)
    with open_views(archive, settings.events_topic, None) as views:
        _, rows = views.query(
            "SELECT conversation_id FROM events GROUP BY 1 ORDER BY count(*) DESC, 1"
        )
    return [row[0] for row in rows]


def _lose_the_log(settings: Settings, capabilities: Capabilities) -> None:
    """Kafka no longer holds any record: a dev broker restarted (Tansu: its topic created
    again, empty) or retention passed (Kafka: every record deleted)."""
    if not capabilities.deletes_records:  # Tansu crashes the connection on delete_records
        created_again(settings)
        return
    topic = settings.events_topic
    cuts = [TopicPartition(topic, p, end) for p, end in partition_ends(settings, topic).items()]
    admin = admin_client(settings)  # kept alive until the deletion is answered
    for done in admin.delete_records(cuts, request_timeout=30).values():
        done.result(60)


def test_replay_reads_the_archive_once_kafka_lost_the_conversation(
    settings: Settings, capabilities: Capabilities, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    conversation_id = _recorded_conversations(settings, archive)[0]
    sink = f"duckdb:{tmp_path / 'sink.duckdb'}"
    with open_sink(sink) as opened:  # the conversation_index, of the log as it was
        ProjectionRunner(settings, opened, [p() for p in BUILT_IN.values()]).run(once=True)
    before = replay_conversation(settings, conversation_id)
    assert before.location.method == "scan"
    assert replay_conversation(settings, conversation_id, sink_url=sink).events == before.events
    _lose_the_log(settings, capabilities)

    for sink_url in (None, sink):  # a scan finds nothing; the index names offsets gone
        notes: list[str] = []
        after = replay_conversation(
            settings,
            conversation_id,
            sink_url=sink_url,
            archive=ParquetArchive(archive),
            on_note=notes.append,
        )
        assert after.events == before.events
        assert after.state == before.state
        assert after.location.method == "archive"
        assert notes[-1] == f"from the archive at {archive}: Kafka no longer holds it"
    with pytest.raises(ConversationNotFound, match="nor does the archive"):
        replay_conversation(settings, "nobody", archive=ParquetArchive(archive))

    # The command says so in one line, and --source kafka does not look there.
    cli_args = ["--bootstrap", settings.bootstrap_servers, "--topic-prefix", settings.topic_prefix]
    shown = agentlog(
        *cli_args,
        "replay",
        conversation_id,
        "--format",
        "json",
        "--archive-dir",
        str(archive),
        state_dir=tmp_path,
    )
    assert shown.code == 0, shown.err
    assert f"note: from the archive at {archive}: Kafka no longer holds it" in shown.err
    document = json.loads(shown.out)
    assert [e["offset"] for e in document["events"]] == [e.offset for e in before.events]
    only_kafka = agentlog(
        *cli_args,
        "replay",
        conversation_id,
        "--source",
        "kafka",
        "--archive-dir",
        str(archive),
        state_dir=tmp_path,
    )
    assert only_kafka.code == 1
    assert f"error: no conversation {conversation_id!r}" in only_kafka.err


def test_replay_takes_records_retention_deleted_from_the_archive(
    settings: Settings, capabilities: Capabilities, tmp_path: Path
) -> None:
    if not capabilities.enforces_retention:
        pytest.skip("Tansu stores retention settings but never deletes records")
    archive = tmp_path / "archive"
    conversation_id = _recorded_conversations(settings, archive)[0]
    before = replay_conversation(settings, conversation_id)
    # Retention deletes the partition's log up to the middle of the conversation.
    middle = before.events[len(before.events) // 2].offset
    cut = TopicPartition(settings.events_topic, before.partition, middle)
    admin = admin_client(settings)  # kept alive until the deletion is answered
    admin.delete_records([cut], request_timeout=30)[cut].result(60)
    assert len(replay_conversation(settings, conversation_id).events) < len(before.events)

    notes: list[str] = []
    after = replay_conversation(
        settings, conversation_id, archive=ParquetArchive(archive), on_note=notes.append
    )
    assert after.events == before.events
    assert after.state == before.state
    deleted = [e for e in before.events if e.offset < middle]
    assert notes[-1] == (
        f"{len(deleted)} events at offsets {deleted[0].offset}..{deleted[-1].offset} from the "
        f"archive at {archive}: Kafka no longer holds them (the log of "
        f"{settings.events_topic}[{before.partition}] starts at {middle})"
    )


def test_the_command_reads_the_archive_without_any_broker(tmp_path: Path) -> None:
    log = simulated_log(3)
    archive_offline(log, tmp_path / "archive")
    conversation_id = log.records[0].key.decode()
    expected = events_of(r for r in log.records if r.key.decode() == conversation_id)
    run = agentlog(
        "--topic-prefix",
        "offline.",
        "replay",
        conversation_id,
        "--source",
        "archive",
        "--archive-dir",
        str(tmp_path / "archive"),
        "--format",
        "json",
        state_dir=tmp_path,
    )
    assert run.code == 0, run.err
    document = json.loads(run.out)
    assert [(e["partition"], e["offset"]) for e in document["events"]] == [
        (e.partition, e.offset) for e in expected
    ]
    archive = tmp_path / "archive"
    assert run.err == f"note: read from the archive at {archive}, as --source archive asks\n"
    missing = agentlog(
        "--topic-prefix", "offline.", "replay", "x", "--source", "archive", state_dir=tmp_path / "s"
    )
    assert missing.code == 1
    assert missing.err.startswith("error: there is no archive of offline.events in ")


def test_with_no_broker_running_replay_falls_back_to_the_archive(tmp_path: Path) -> None:
    # `agentlog dev down`, then `agentlog replay CONV`: no Kafka is configured at all.
    log = simulated_log(3)
    archive_offline(log, tmp_path / "state" / "archive")
    conversation_id = log.records[0].key.decode()
    expected = events_of(r for r in log.records if r.key.decode() == conversation_id)
    run = agentlog(
        "--topic-prefix", "offline.", "replay", conversation_id, "--format", "json",
        state_dir=tmp_path / "state",
    )  # fmt: skip
    assert run.code == 0, run.err
    assert [e["offset"] for e in json.loads(run.out)["events"]] == [e.offset for e in expected]
    archive = tmp_path / "state" / "archive"
    assert run.err.startswith(f"note: from the archive at {archive}: no Kafka is configured")
    nothing = agentlog("replay", conversation_id, state_dir=tmp_path / "empty")
    assert nothing.code == 1
    assert "`agentlog dev up`" in nothing.err and "--source archive" in nothing.err


def test_the_note_for_an_archive_asked_for_is_a_sentence(tmp_path: Path) -> None:
    log = simulated_log(2)
    archive_offline(log, tmp_path)
    notes: list[str] = []
    replay_conversation(
        OFFLINE,
        log.records[0].key.decode(),
        source="archive",
        archive=ParquetArchive(tmp_path),
        on_note=notes.append,
    )
    assert notes == [f"read from the archive at {tmp_path}, as --source archive asks"]
