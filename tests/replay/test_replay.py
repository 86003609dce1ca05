"""Replay finds a conversation where the producer put it, reads only its range through the
index, and rebuilds exactly the events an independent reader finds and the state the live
projection holds, on every engine and sink."""

from __future__ import annotations

import random
import string
import uuid
from pathlib import Path

import duckdb
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic
from helpers.cli import agentlog
from helpers.kafka_python_reader import read_all

from agentlog.consumers import open_sink
from agentlog.consumers.queries import conversation
from agentlog.kafka_config import admin_client, producer_config
from agentlog.partitioner import partition_for
from agentlog.producers import Recorder
from agentlog.replay import ConversationNotFound, replay_conversation
from agentlog.replay.conversation import Undecodable
from agentlog.settings import Settings


def _create_topic(settings: Settings, name: str, partitions: int) -> None:
    admin = admin_client(settings)  # kept alive until the topic exists
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)


def _keys(count: int) -> list[str]:
    rng = random.Random(20)
    alphabet = string.ascii_letters + string.digits + "-_.:/ üßé中文🙂"
    keys = [f"conv-{n}" for n in range(count // 2)]
    keys += ["".join(rng.choices(alphabet, k=rng.randint(1, 70))) for _ in range(count // 2)]
    keys += [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(200)]
    return keys


@pytest.mark.parametrize("partitions", [6, 7, 16])
def test_the_partition_replay_computes_is_the_one_librdkafka_chose(
    settings: Settings, partitions: int
) -> None:
    topic = f"{settings.topic_prefix}keys-{partitions}"
    _create_topic(settings, topic, partitions)
    chosen: dict[str, int] = {}

    def delivered(error, message) -> None:
        assert error is None, error
        chosen[message.key().decode()] = message.partition()

    # The producer agentlog's recorders use (murmur2_random), with every delivery reported.
    producer = Producer({**producer_config(settings), "delivery.report.only.error": False})
    keys = _keys(3000)
    for key in keys:
        producer.produce(topic, b"x", key.encode(), on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert len(chosen) == len(set(keys))
    differing = {k: p for k, p in chosen.items() if partition_for(k, partitions) != p}
    assert differing == {}
    assert len(set(chosen.values())) == partitions


def _demo(settings: Settings, tmp_path: Path, sink_url: str, count: int, seed: int) -> None:
    run = agentlog(
        "--bootstrap",
        settings.bootstrap_servers,
        "--topic-prefix",
        settings.topic_prefix,
        "demo",
        "-n",
        str(count),
        "--seed",
        str(seed),
        "--no-live",  # the simulated bulk only: these tests compare its conversations
        state_dir=tmp_path,
        env={"AGENTLOG_SINK": sink_url},
        timeout=300,
    )
    assert run.code == 0, run.err


def _by_key(records) -> dict[str, list]:
    found: dict[str, list] = {}
    for record in records:
        found.setdefault(record.key.decode(), []).append(record)
    return found


def _live_state(sink_url: str, conversation_id: str) -> dict:
    with open_sink(sink_url, read_only=True) as sink:
        row, calls, index = conversation(sink, conversation_id)
    return {
        "agentlog_conversations": [row],
        "agentlog_tool_calls": sorted(calls, key=lambda c: c["tool_call_id"]),
        "agentlog_conversation_index": [index],
    }


def test_replaying_every_demo_conversation_gives_the_scanned_events_and_the_live_state(
    settings: Settings, sink_url: str, tmp_path: Path
) -> None:
    _demo(settings, tmp_path, sink_url, 40, seed=8)
    records = read_all(settings.bootstrap_servers, settings.events_topic)
    scanned = _by_key(records)
    assert len(scanned) == 40
    sizes = {p: 1 + max(r.offset for r in records if r.partition == p) for p in range(3)}
    for conversation_id, expected in scanned.items():
        replay = replay_conversation(settings, conversation_id, sink_url=sink_url)
        got = [(e.partition, e.offset, e.event_id) for e in replay.entries]
        assert got == [(r.partition, r.offset, _event_id(r.value)) for r in expected]
        assert replay.state == _live_state(sink_url, conversation_id)
        # Only the conversation's own range was read, not its partition.
        location = replay.location
        assert location.method == "index" and replay.notes == []
        assert location.ranges[0] == (expected[0].offset, expected[-1].offset + 1)
        assert replay.records_read == expected[-1].offset + 1 - expected[0].offset
        assert replay.records_read < sizes[location.partition]
    # Without the index, a scan of the partition finds the same.
    for conversation_id in list(scanned)[:5]:
        indexed = replay_conversation(settings, conversation_id, sink_url=sink_url)
        scanned_replay = replay_conversation(settings, conversation_id, scan=True)
        assert scanned_replay.location.method == "scan"
        assert scanned_replay.records_read == sizes[scanned_replay.partition]
        assert scanned_replay.entries == indexed.entries
        assert scanned_replay.state == indexed.state


def _event_id(value: bytes) -> str:
    from helpers.independent_fold import decode_plain

    return decode_plain(value)["event_id"]


def _record(settings: Settings, conversation_id: str, texts: list[str]) -> None:
    with Recorder(settings) as recorder:
        for text in texts:
            recorder.user_message(conversation_id, text)


def _texts(replay) -> list[str]:
    return [e.payload["text"] for e in replay.events if e.event_type == "user_message"]


def test_events_the_index_has_not_applied_yet_are_read_too(
    settings: Settings, tmp_path: Path
) -> None:
    sink_url = f"duckdb:{tmp_path / 'p.duckdb'}"
    _demo(settings, tmp_path, sink_url, 6, seed=4)
    first = "conv-4-00002"
    _record(settings, first, ["late one", "late two"])
    _record(settings, "conv-new", ["never projected"])
    replay = replay_conversation(settings, first, sink_url=sink_url)
    assert _texts(replay)[-2:] == ["late one", "late two"]
    assert replay.location.method == "index" and len(replay.location.ranges) == 2
    assert "records behind" in replay.notes[0]
    assert replay.state["agentlog_conversations"][0]["turns"] == (
        _live_state(sink_url, first)["agentlog_conversations"][0]["turns"] + 2
    )
    fresh = replay_conversation(settings, "conv-new", sink_url=sink_url)
    assert _texts(fresh) == ["never projected"]
    assert "not in the conversation_index" in fresh.notes[0]
    with pytest.raises(ConversationNotFound, match="'conv-absent'"):
        replay_conversation(settings, "conv-absent", sink_url=sink_url)


def test_without_an_index_replay_scans_the_partition_and_says_why(
    settings: Settings, tmp_path: Path
) -> None:
    _record(settings, "conv-a", ["one", "two", "three"])
    _record(settings, "conv-b", ["other"])
    missing = f"duckdb:{tmp_path / 'none.duckdb'}"
    replay = replay_conversation(settings, "conv-a", sink_url=missing)
    assert _texts(replay) == ["one", "two", "three"]
    assert replay.location.method == "scan"
    assert "no projections in" in replay.notes[0] and "scanning all" in replay.notes[0]
    # A sink holding other projections but not the index.
    only_conversations = f"duckdb:{tmp_path / 'other.duckdb'}"
    run = agentlog(
        "--bootstrap",
        settings.bootstrap_servers,
        "--topic-prefix",
        settings.topic_prefix,
        "project",
        "run",
        "--once",
        "--projection",
        "conversations",
        "--sink",
        only_conversations,
        state_dir=tmp_path,
    )
    assert run.code == 0, run.err
    replay = replay_conversation(settings, "conv-a", sink_url=only_conversations)
    assert _texts(replay) == ["one", "two", "three"]
    assert "has no conversation_index projection" in replay.notes[0]
    with pytest.raises(ConversationNotFound, match="none of the .* records"):
        replay_conversation(settings, "conv-c", sink_url=missing)


def test_an_index_of_another_log_is_noticed_and_the_partition_scanned(
    settings: Settings, tmp_path: Path
) -> None:
    _record(settings, "conv-a", [f"a{n}" for n in range(5)])
    _record(settings, "conv-b", [f"b{n}" for n in range(5)])
    path = tmp_path / "p.duckdb"
    sink_url = f"duckdb:{path}"
    run = agentlog(
        "--bootstrap",
        settings.bootstrap_servers,
        "--topic-prefix",
        settings.topic_prefix,
        "project",
        "run",
        "--once",
        "--sink",
        sink_url,
        state_dir=tmp_path,
    )
    assert run.code == 0, run.err
    # As if the index had been built from an earlier log: its offsets hold other records.
    with duckdb.connect(str(path)) as db:
        db.execute(
            "UPDATE agentlog_conversation_index SET first_offset = first_offset + 1 "
            "WHERE conversation_id = 'conv-a'"
        )
    replay = replay_conversation(settings, "conv-a", sink_url=sink_url)
    assert _texts(replay) == [f"a{n}" for n in range(5)]
    assert replay.location.method == "scan"
    assert "another log" in replay.notes[0]


def test_undecodable_records_of_the_conversation_are_shown_not_folded(
    settings: Settings,
) -> None:
    _record(settings, "conv-x", ["before"])
    raw = Producer(producer_config(settings))
    raw.produce(settings.events_topic, b"\xc3\x01garbage!", b"conv-x")
    assert raw.flush(10) == 0
    _record(settings, "conv-x", ["after"])
    replay = replay_conversation(settings, "conv-x", scan=True)
    kinds = [type(e).__name__ for e in replay.entries]
    assert kinds == ["RecordedEvent", "Undecodable", "RecordedEvent"]
    assert isinstance(replay.entries[1], Undecodable) and replay.entries[1].size == 10
    assert replay.state["agentlog_conversations"][0]["turns"] == 2


def test_replay_imports_only_the_core_and_consumers() -> None:
    import ast

    root = Path(__file__).parent.parent.parent
    core = {p.stem for p in (root / "agentlog").glob("*.py")}
    allowed = ("agentlog.consumers", "agentlog.replay")
    sources = sorted((root / "replay").rglob("*.py"))
    assert sources, "no replay modules found: the check would pass on nothing"
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name == "agentlog" or name.startswith("agentlog."):
                    part = name.split(".")[1] if "." in name else ""
                    assert name.startswith(allowed) or part in core, f"{source.name}: {name}"


def test_replay_exports() -> None:
    import agentlog.replay

    assert set(agentlog.replay.__all__) == {
        "MODES",
        "At",
        "BeforeFirstEvent",
        "CallScript",
        "ConversationArchive",
        "ConversationNotFound",
        "Diverged",
        "Divergence",
        "OffsetBeyondEnd",
        "RecordedCall",
        "Replay",
        "ReplayError",
        "RerunPlan",
        "RerunReport",
        "Session",
        "Undecodable",
        "conversation_state",
        "parse_at",
        "plan_rerun",
        "recorded_calls",
        "replay_conversation",
        "rerun",
        "rerun_recording",
        "rerun_start",
    }
    for name in agentlog.replay.__all__:
        assert getattr(agentlog.replay, name) is not None
