"""`agentlog status`: per consumer group and partition the lag and the age of the oldest
unprocessed record, members, redelivery, dead letters; and the same figures scraped
from its Prometheus endpoint (`--serve`)."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from helpers import Capabilities, tool_fixtures
from helpers.cli import agentlog, agentlog_process

from agentlog.cli.metrics import GAUGES, exposition
from agentlog.consumers import ToolWorker
from agentlog.consumers.group_status import (
    GroupStatus,
    PartitionStatus,
    StatusReport,
)
from agentlog.consumers.tools import restarts_of
from agentlog.kafka_config import group_consumer_config
from agentlog.producers import Recorder, ToolClient
from agentlog.settings import Settings

# -- helpers -----------------------------------------------------------------------------


def base(settings: Settings) -> tuple[str, ...]:
    return ("--bootstrap", str(settings.bootstrap_servers), "--topic-prefix", settings.topic_prefix)


def record(settings: Settings, conversation: str, count: int) -> None:
    """`count` events of one conversation (so one partition), recorded now."""
    with Recorder(settings) as recorder:
        for n in range(count):
            recorder.user_message(conversation, f"message {n}")


def consume_and_commit(settings: Settings, group: str, count: int) -> None:
    """As a member of `group`, consume `count` records of the events topic and commit
    each (then leave the group)."""
    consumer = Consumer(group_consumer_config(settings, group))
    consumer.subscribe([settings.events_topic])
    done, deadline = 0, time.monotonic() + 60
    try:
        while done < count:
            assert time.monotonic() < deadline, f"consumed {done} of {count} within 60s"
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error.str()
                continue
            offset = message.offset()
            assert offset is not None
            tp = TopicPartition(message.topic(), message.partition(), offset + 1)
            consumer.commit(offsets=[tp], asynchronous=False)
            done += 1
    finally:
        consumer.close()


def status_json(settings: Settings, tmp_path: Path, *extra: str) -> dict[str, Any]:
    run = agentlog(*base(settings), "status", "--format", "json", *extra, state_dir=tmp_path)
    assert run.code == 0, run.err
    parsed: dict[str, Any] = json.loads(run.out)
    return parsed


def group_of(report: dict[str, Any], group: str) -> dict[str, Any]:
    found = [g for g in report["groups"] if g["group"] == group]
    assert found, f"group {group} not in {[g['group'] for g in report['groups']]}"
    return found[0]


def waiting(group: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in group["partitions"] if p["lag"]]


# -- broker tests --------------------------------------------------------------------------


def test_status_shows_the_lag_a_group_left_and_its_age_then_zero(
    settings: Settings, tmp_path: Path
) -> None:
    group = f"readers-{uuid.uuid4().hex[:8]}"
    written_at = time.time()
    record(settings, "conv-lag", 12)
    consume_and_commit(settings, group, 5)

    report = status_json(settings, tmp_path)
    mine = group_of(report, group)
    assert mine["kind"] == "consumer" and mine["offsets_from"] == "kafka"
    assert mine["lag"] == 7
    [behind] = waiting(mine)
    assert (behind["topic"], behind["committed"], behind["end"]) == (settings.events_topic, 5, 12)
    # The record at offset 5 was written at the start of this test, not before it.
    assert 0 <= behind["oldest_unprocessed_age_s"] <= time.time() - written_at + 1
    assert mine["oldest_unprocessed_age_s"] == behind["oldest_unprocessed_age_s"]
    assert mine["members"] == 0  # it left the group
    assert mine["redelivery_rate"] is None and mine["redelivery_basis"].startswith("n/a")
    assert (mine["dlq_depth"], mine["parked_conversations"]) == (0, 0)

    table = agentlog(*base(settings), "status", state_dir=tmp_path)
    assert table.code == 0, table.err
    [row] = [line for line in table.out.splitlines() if line.startswith(group)][:1]
    assert row.split()[:5] == [group, "consumer", "empty", "0", "7"]

    consume_and_commit(settings, group, 7)
    after = group_of(status_json(settings, tmp_path, "--group", group), group)
    assert after["lag"] == 0 and after["oldest_unprocessed_age_s"] == 0
    assert not waiting(after)


def test_members_of_a_live_group_are_counted_where_the_broker_reports_them(
    settings: Settings, tmp_path: Path, capabilities: Capabilities
) -> None:
    group = f"live-{uuid.uuid4().hex[:8]}"
    record(settings, "conv-live", 2)
    consume_and_commit(settings, group, 1)
    member = Consumer(group_consumer_config(settings, group))
    try:
        member.subscribe([settings.events_topic])
        deadline = time.monotonic() + 30
        while not member.assignment():
            assert time.monotonic() < deadline, "no assignment within 30s"
            member.poll(0.2)
        mine = group_of(status_json(settings, tmp_path, "--group", group), group)
    finally:
        member.close()
    assert mine["state"] == "stable" and mine["lag"] == 1
    # Tansu describes a stable group with an empty member list: unknown, not 0.
    assert mine["members"] == (1 if capabilities.reports_group_members else None)


def test_a_projectors_offsets_are_read_from_its_sink(settings: Settings, tmp_path: Path) -> None:
    sink = f"duckdb:{tmp_path / 'p.duckdb'}"
    group = f"projector-{uuid.uuid4().hex[:8]}"
    record(settings, "conv-p", 4)
    run = agentlog(
        *base(settings), "project", "run", "--once", "--sink", sink, "--group", group,
        state_dir=tmp_path,
    )  # fmt: skip
    assert run.code == 0, run.err
    record(settings, "conv-p", 3)

    mine = group_of(status_json(settings, tmp_path, "--sink", sink), group)
    assert mine["kind"] == "projector"
    assert mine["offsets_from"].startswith("sink ") and "p.duckdb" in mine["offsets_from"]
    assert mine["lag"] == 3
    without_sink = group_of(status_json(settings, tmp_path), group)
    assert without_sink["offsets_from"] == "kafka"  # no default sink under this state dir


def test_tool_workers_redelivery_counts_calls_started_again(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tools").mkdir()
    monkeypatch.setenv("AGENTLOG_TEST_TOOL_DIR", str(tmp_path / "tools"))
    group = f"tools-{uuid.uuid4().hex[:8]}"
    with ToolClient(settings) as client:
        calls = [
            client.request("conv-t1", "add", {"a": 1, "b": 1}),
            client.request("conv-t2", "add", {"a": 2, "b": 2}),
            client.request("conv-t3", "flaky", {"fail_times": 1}),  # a retry: attempt 2
        ]
        ToolWorker(settings, tool_fixtures.tools, group=group, concurrency=4).run(once=True)
        assert [c.result(timeout=30) for c in calls] == [2, 4, "finally"]

    mine = group_of(status_json(settings, tmp_path), group)
    assert mine["kind"] == "tool workers"
    assert mine["lag"] == 0
    assert mine["redelivery_rate"] == pytest.approx(1 / 3)
    assert "1 of 3 tool calls" in mine["redelivery_basis"]
    assert {p["topic"] for p in mine["partitions"]} == {settings.tool_requests_topic}


def test_dead_letters_of_a_group_are_its_dlq_depth(settings: Settings, tmp_path: Path) -> None:
    record(settings, "conv-d", 1)
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    for n in range(2):
        producer.produce(settings.events_topic, b"\xc3\x01not avro " + bytes([n]), b"conv-d")
    producer.flush(10)
    sink = f"duckdb:{tmp_path / 'd.duckdb'}"
    group = f"projector-{uuid.uuid4().hex[:8]}"
    run = agentlog(
        *base(settings), "project", "run", "--once", "--sink", sink, "--group", group,
        state_dir=tmp_path,
    )  # fmt: skip
    assert run.code == 0, run.err
    mine = group_of(status_json(settings, tmp_path, "--sink", sink), group)
    assert (mine["dlq_depth"], mine["parked_conversations"], mine["lag"]) == (2, 0, 0)


SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")
LABEL = re.compile(r'(?P<key>[a-z_]+)="(?P<value>(?:[^"\\]|\\.)*)"')


def parse_exposition(text: str) -> tuple[dict[str, str], dict[str, str], list[tuple]]:
    """HELP and TYPE per metric, and (name, labels, value) samples; fails on any line
    that is not of the text format."""
    helps: dict[str, str] = {}
    types: dict[str, str] = {}
    samples = []
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[len("# HELP ") :].partition(" ")
            helps[name] = help_text
        elif line.startswith("# TYPE "):
            name, _, kind = line[len("# TYPE ") :].partition(" ")
            types[name] = kind
        else:
            match = SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            labels = {m["key"]: m["value"] for m in LABEL.finditer(match["labels"] or "")}
            assert match["name"] in types, f"sample of {match['name']} before its TYPE"
            samples.append((match["name"], labels, float(match["value"])))
    return helps, types, samples


def test_metrics_endpoint_serves_the_figures_and_stops_on_ctrl_c(
    settings: Settings, tmp_path: Path
) -> None:
    group = f"readers-{uuid.uuid4().hex[:8]}"
    record(settings, "conv-m", 6)
    consume_and_commit(settings, group, 2)
    server = agentlog_process(
        *base(settings), "status", "--serve", "0", "--interval", "1",
        env={"AGENTLOG_STATE_DIR": str(tmp_path)},
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stderr is not None
        first = server.stderr.readline()
        address = re.search(r"http://\S+/metrics", first)
        assert address, first
        with urllib.request.urlopen(address[0], timeout=10) as answer:
            assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            helps, types, samples = parse_exposition(answer.read().decode())
        for name in (
            "agentlog_consumer_lag",
            "agentlog_oldest_unprocessed_age_seconds",
            "agentlog_group_members",
            "agentlog_redelivery_rate",
            "agentlog_dlq_depth",
            "agentlog_parked_conversations",
        ):
            assert types[name] == "gauge" and helps[name]
        lags = {
            (s[1]["topic"], s[1]["partition"]): s[2]
            for s in samples
            if s[0] == "agentlog_consumer_lag" and s[1]["group"] == group
        }
        assert sum(lags.values()) == 4 and set(lags) == {
            (settings.events_topic, str(p)) for p in range(3)
        }
        ages = [
            s[2]
            for s in samples
            if s[0] == "agentlog_oldest_unprocessed_age_seconds" and s[1]["group"] == group
        ]
        assert max(ages) > 0 and min(ages) == 0
        mine = {s[0]: s[2] for s in samples if s[1] == {"group": group}}
        assert mine["agentlog_dlq_depth"] == 0 and mine["agentlog_group_members"] == 0
        assert "agentlog_redelivery_rate" not in mine  # n/a for this group: no sample
        assert ("agentlog_status_collect_success", {}, 1.0) in samples
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=30) == 0
        assert "stopped serving metrics" in server.stderr.read()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


# -- no broker ---------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_a_broker_that_is_down_is_one_line_within_seconds(tmp_path: Path) -> None:
    started = time.monotonic()
    run = agentlog(
        "--bootstrap", f"127.0.0.1:{closed_port()}", "status", "--timeout", "2",
        state_dir=tmp_path, timeout=60,
    )  # fmt: skip
    took = time.monotonic() - started
    assert run.code == 1
    assert len(run.err.strip().splitlines()) == 1 and run.err.startswith("error: "), run.err
    assert "did not answer" in run.err
    assert took < 15, took


def test_restarts_are_calls_started_more_than_once() -> None:
    starts = [("a", 1), ("b", 1), ("b", 2), ("c", 3), ("d", 1), ("d", 1)]
    found = restarts_of(starts)
    # b retried, c's earlier attempts lie before the window, d started twice
    assert (found.calls, found.restarted) == (4, 3)
    assert found.rate == 0.75
    assert restarts_of([]).rate is None


def test_exposition_leaves_unknown_figures_out_and_escapes_labels() -> None:
    group = GroupStatus(
        group='we"ird\\group',
        kind="consumer",
        state="stable",
        members=None,  # Tansu does not report members
        offsets_from="kafka",
        partitions=[PartitionStatus("t.events", 0, 3, 5, 2, 1.5)],
        redelivery_rate=None,
        redelivery_basis="n/a",
        dlq_depth=1,
        parked_conversations=0,
    )
    helps, types, samples = parse_exposition(exposition(StatusReport([group], 1000.0, 10)))
    assert set(types) == set(GAUGES) and set(helps) == set(GAUGES)
    names = {s[0] for s in samples}
    assert "agentlog_group_members" not in names and "agentlog_redelivery_rate" not in names
    lag = [s for s in samples if s[0] == "agentlog_consumer_lag"]
    assert lag == [
        ("agentlog_consumer_lag", {"group": 'we\\"ird\\\\group', "topic": "t.events",
                                   "partition": "0"}, 2.0)
    ]  # fmt: skip
    failed = parse_exposition(exposition(None))[2]
    assert failed == [("agentlog_status_collect_success", {}, 0.0)]


def test_a_group_idle_longer_than_the_setting_is_shown_idle_and_can_be_forgotten(
    settings: Settings, tmp_path: Path
) -> None:
    group = f"demo-leftover-{uuid.uuid4().hex[:8]}"
    record(settings, "conv-idle", 6)
    consume_and_commit(settings, group, 2)  # then it stopped, 4 behind

    # Within the setting (default one day) it is lag, as any stopped group's.
    first = group_of(status_json(settings, tmp_path), group)
    assert (first["idle"], first["lag"]) == (False, 4)

    # Idle for longer than AGENTLOG_STATUS_IDLE_AFTER: idle, not lagging.
    idle_now = {"AGENTLOG_STATUS_IDLE_AFTER": "0"}
    run = agentlog(*base(settings), "status", state_dir=tmp_path, env=idle_now)
    assert run.code == 0, run.err
    [row] = [line for line in run.out.splitlines() if line.startswith(group)][:1]
    assert row.split()[2] == "idle" and row.split()[5:7] == ["-", "-"], row
    assert f"`agentlog status --forget {group}` leaves it out" in run.out
    report = json.loads(
        agentlog(
            *base(settings), "status", "--format", "json", state_dir=tmp_path, env=idle_now
        ).out
    )
    assert group_of(report, group)["idle"] is True

    # Left out of the alerting metrics: no lag or age sample, an idle gauge of 1.
    page = exposition(
        StatusReport(
            [
                GroupStatus(
                    group, "consumer", "empty", 0, "kafka",
                    [PartitionStatus(settings.events_topic, 0, 2, 6, 4, 99.0)],
                    None, "n/a", 0, 0, idle_for_s=90_000.0,
                )
            ],
            time.time(),
            10_000,
        )
    )  # fmt: skip
    assert f'agentlog_group_idle{{group="{group}"}} 1' in page
    assert "agentlog_consumer_lag{" not in page
    assert "agentlog_oldest_unprocessed_age_seconds{" not in page

    # Forgotten: left out until it consumes again.
    forgot = agentlog(*base(settings), "status", "--forget", group, state_dir=tmp_path)
    assert forgot.code == 0, forgot.err
    assert group not in forgot.out
    assert group not in [g["group"] for g in status_json(settings, tmp_path)["groups"]]
    consume_and_commit(settings, group, 1)
    back = group_of(status_json(settings, tmp_path), group)
    assert (back["idle"], back["lag"]) == (False, 3)
    unknown = agentlog(*base(settings), "status", "--forget", "no-such-group", state_dir=tmp_path)
    assert unknown.code == 1 and "no consumer group 'no-such-group'" in unknown.err
