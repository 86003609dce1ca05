"""`agentlog demo`: what it says it wrote is on the topic, readable by anyone."""

from __future__ import annotations

import json
import re
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from helpers.cli import agentlog, agentlog_process
from helpers.files import open_to_others
from helpers.independent_fold import decode_plain
from helpers.kafka_python_reader import read_all
from helpers.training_checks import check_training_file


def _demo(bootstrap: str, prefix: str, tmp_path: Path, *extra: str):
    run = agentlog(
        "--bootstrap", bootstrap, "--topic-prefix", prefix, "demo", *extra, state_dir=tmp_path
    )
    assert run.code == 0, run.err
    return run


def test_demo_events_are_all_on_the_topic_in_order(bootstrap: str, tmp_path: Path) -> None:
    prefix = f"demo{uuid.uuid4().hex[:8]}."
    run = _demo(bootstrap, prefix, tmp_path, "--conversations", "40", "--seed", "11")
    written = int(re.search(r"recorded (\d+) events", run.out).group(1))
    assert f"this run's events: {written} on the topic, {written} written" in run.out
    assert "split across partitions: 0; events out of order: 0" in run.out

    # The simulated bulk's conversations (the live phase's are `live-...`).
    records = [r for r in read_all(bootstrap, f"{prefix}events") if r.key.startswith(b"conv-")]
    assert len(records) == written
    partitions = defaultdict(set)
    times = defaultdict(list)
    kinds = set()
    for record in records:
        event = decode_plain(record.value)  # fastavro and the released .avsc files only
        assert event is not None
        assert record.key.decode() == event["conversation_id"]
        partitions[event["conversation_id"]].add(record.partition)
        times[event["conversation_id"]].append(event["occurred_at"])
        kinds.add(event["payload"][0])
    assert len(partitions) == 40
    assert all(len(p) == 1 for p in partitions.values())
    assert all(t == sorted(t) for t in times.values())
    for kind in ("LlmCall", "ToolCallRequested", "ToolCallCompleted", "Handoff"):
        assert f"agentlog.{kind}" in kinds


def test_demo_is_deterministic_with_a_seed(bootstrap: str, tmp_path: Path) -> None:
    first, second = (f"det{uuid.uuid4().hex[:8]}." for _ in range(2))
    _demo(bootstrap, first, tmp_path, "-n", "15", "--seed", "5")
    _demo(bootstrap, second, tmp_path, "-n", "15", "--seed", "5")
    # The simulated bulk is reproducible (the live phase runs in real time).
    a = [(r.partition, r.key, r.value) for r in read_all(bootstrap, f"{first}events")]
    b = [(r.partition, r.key, r.value) for r in read_all(bootstrap, f"{second}events")]
    a, b = ([r for r in rs if r[1].startswith(b"conv-")] for rs in (a, b))
    assert a and a == b


@pytest.mark.starts_dev_broker
def test_demo_alone_starts_a_dev_broker_and_leaves_it_running(tmp_path: Path) -> None:
    state = tmp_path / "state"  # made by agentlog
    run = agentlog("demo", "-n", "5", "--seed", "1", state_dir=state)
    try:
        assert run.code == 0, run.err
        assert "started the embedded dev broker (tansu)" in run.out  # the default engine
        # Everything it wrote (state, projections, archive, exports, timeline) is the
        # user's alone; DuckDB's write-ahead log is made by DuckDB, inside that folder.
        assert open_to_others(state, allowed=(".wal",)) == []
        status = agentlog("dev", "status", state_dir=state)
        assert status.code == 0
        tail = agentlog("tail", "--type", "conversation_started", "-n", "100", state_dir=state)
        started = tail.out.splitlines()
        assert sum(" conv-1-" in line for line in started) == 5
        assert sum(" live-1-" in line for line in started) == 8  # the live phase's
        # Its hint shows conversations even when none of 5 escalated.
        hint = re.search(r"agentlog conversations list (--outcome \S+)", run.out).group(1)
        listed = agentlog("conversations", "list", *hint.split(), state_dir=state)
        assert listed.code == 0, listed.err
        assert len(listed.out.strip().splitlines()) > 1, listed.out
    finally:
        agentlog("dev", "down", state_dir=state)


def test_demo_projects_and_the_state_commands_read_it(bootstrap: str, tmp_path: Path) -> None:
    prefix = f"proj{uuid.uuid4().hex[:8]}."
    base = ("--bootstrap", bootstrap, "--topic-prefix", prefix)
    run = _demo(bootstrap, prefix, tmp_path, "-n", "60", "--seed", "21")
    written = int(re.search(r"recorded (\d+) events", run.out).group(1))
    # The simulated bulk and the live phase's conversations.
    projected = int(re.search(r"projected (\d+) new events", run.out).group(1))
    assert projected > written
    assert "outcomes: " in run.out

    status = agentlog(*base, "project", "status", state_dir=tmp_path)
    assert status.code == 0, status.err
    assert "total lag: 0 events" in status.out

    listed = agentlog(*base, "conversations", "list", "--limit", "100", state_dir=tmp_path)
    assert listed.code == 0, listed.err
    # header + 60 simulated conversations + 8 live ones
    assert len(listed.out.strip().splitlines()) == 1 + 60 + 8
    assert "more match" not in listed.err
    # Stopped at the limit: it says so, and how to see more.
    few = agentlog(*base, "conversations", "list", "--limit", "5", state_dir=tmp_path)
    assert len(few.out.strip().splitlines()) == 1 + 5
    assert "(the 5 most recently active; more match: --limit 50 shows more" in few.err
    ended = agentlog(
        *base,
        "conversations",
        "list",
        "--status",
        "ended",
        "--agent",
        "billing",
        state_dir=tmp_path,
    )
    rows = ended.out.strip().splitlines()[1:]
    assert rows and all(" ended " in r and "billing" in r for r in rows)

    # The demo's own hint shows conversations: the escalated ones, ended or not.
    hint = re.search(r"agentlog conversations list (--outcome \S+)", run.out).group(1)
    assert hint == "--outcome escalated"
    hinted = agentlog(*base, "conversations", "list", *hint.split(), state_dir=tmp_path)
    assert hinted.code == 0, hinted.err
    escalated = hinted.out.strip().splitlines()[1:]
    assert escalated and all(r.split()[2] == "escalated" for r in escalated)

    cid = rows[0].split()[0]
    shown = agentlog(*base, "conversations", "show", cid, state_dir=tmp_path)
    assert shown.code == 0, shown.err
    assert "status           ended" in shown.out
    assert f"{prefix}events[" in shown.out and "tool lookup_invoice" in shown.out

    missing = agentlog(*base, "conversations", "show", "nope", state_dir=tmp_path)
    assert missing.code == 1 and "no conversation 'nope'" in missing.err

    # It wrote a training file of this run's conversations, valid by checks of our own,
    # and a compliance bundle that verifies.
    training = Path(re.search(r"training file: (\S+)", run.out).group(1))
    examples = check_training_file(training)
    assert 0 < len(examples) <= 60
    provenance = training.with_name(training.stem + ".provenance.jsonl").read_text()
    assert {json.loads(line)["conversation_id"] for line in provenance.splitlines()} <= {
        f"conv-21-{n:05d}" for n in range(60)
    }
    assert "[EMAIL]" in training.read_text()  # redacted by default
    bundle = re.search(r"compliance bundle of \S+: (\S+)", run.out).group(1)
    assert f"agentlog export verify {bundle}" in run.out
    verified = agentlog("export", "verify", bundle, state_dir=tmp_path)
    assert verified.code == 0, verified.err

    # It replayed one refund conversation, wrote its timeline, and re-ran its agents on
    # the recording: as they are, and with a lower refund limit.
    assert "conversation conv-21-00000: " in run.out
    assert " p" in run.out and "conversation_started" in run.out
    timeline = Path(re.search(r"timeline of conv-21-00000: (\S+)", run.out).group(1))
    page = timeline.read_text()
    assert page.startswith("<!DOCTYPE html>") and "conv-21-00000" in page
    same = re.search(r"with the same policy .*: (\d+) calls served from the log", run.out)
    assert same and int(same.group(1)) > 3
    assert "  no divergence: the code made the recorded calls" in run.out
    assert re.search(
        r"with a refund limit of 100 EUR: \d+ calls served from the log, ended escalated "
        r"\(recorded: resolved\)\n  not called: tool issue_refund\(.*\) at "
        + re.escape(prefix)
        + r"events\[\d\]@\d+",
        run.out,
    ), run.out

    # Projecting again finds nothing new: the offsets live in the sink.
    again = agentlog(*base, "project", "run", "--once", state_dir=tmp_path)
    assert again.code == 0 and again.out.startswith("applied 0 events")


def test_tail_follow_prints_events_as_they_arrive(settings, tmp_path: Path) -> None:
    import signal
    import subprocess
    import threading

    from agentlog.producers import Recorder

    follower = agentlog_process(
        "--bootstrap",
        settings.bootstrap_servers,
        "--topic-prefix",
        settings.topic_prefix,
        "tail",
        "--follow",
        "--json",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(60, follower.kill)  # a silent follower fails, never hangs
    watchdog.start()
    try:
        with Recorder(settings) as recorder:
            sent = recorder.user_message("conv-live", "are you there?")
        line = follower.stdout.readline()  # blocks until the follower prints the event
        assert json.loads(line)["event_id"] == sent
    finally:
        follower.send_signal(signal.SIGINT)
        _, err = follower.communicate(timeout=30)
        watchdog.cancel()
    assert follower.returncode == 130 and "Traceback" not in err, err


def test_a_corrupt_record_on_the_topic_is_counted_not_fatal(bootstrap: str, tmp_path: Path) -> None:
    from confluent_kafka import Producer

    from agentlog.settings import Settings
    from agentlog.topics import create_topics

    prefix = f"bad{uuid.uuid4().hex[:8]}."
    create_topics(Settings(bootstrap_servers=bootstrap, topic_prefix=prefix, partitions=3))
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(f"{prefix}events", key=b"someone-else", value=b"\x00\x00\x00\x00\x00\x00")
    assert producer.flush(10) == 0
    run = _demo(bootstrap, prefix, tmp_path, "-n", "5", "--seed", "2")
    written = int(re.search(r"recorded (\d+) events", run.out).group(1))
    assert f"this run's events: {written} on the topic, {written} written" in run.out
    warning = re.search(r"warning: 1 record of \S+events could not be decoded .*", run.err)
    assert warning is not None, run.err
    assert re.search(r"\[\d\]@0", warning.group(0)), warning.group(0)
