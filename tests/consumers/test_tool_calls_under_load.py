"""Every tool call ends exactly once under the benchmark's load: one worker process
(concurrency 32), hundreds of calls in flight over many conversations, thousands of
calls; counted by an independent reader (kafka-python), not by the client that waited.

On Tansu 0.6 this once lost calls: a fetch was answered without a batch another client
had just produced (records readable a moment later), and the worker, then the waiting
client, passed over them. `AGENTLOG_TOOL_LOAD_ROUNDS=20` runs the pattern 20 times on
fresh topics (how it was proved); CI runs it once per engine.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections import Counter
from pathlib import Path

import orjson
import pytest
from helpers.cli import agentlog
from helpers.kafka_python_reader import read_all
from test_tool_workers import worker_process

from agentlog.consumers import ToolRegistry, ToolWorker
from agentlog.consumers.committing_member import _Partition
from agentlog.errors import CommitPastUnfinished
from agentlog.producers import ToolClient
from agentlog.reader import read_partitions
from agentlog.serde import decode_event
from agentlog.settings import Settings
from agentlog.topics import create_topics

CALLS = 3000
IN_FLIGHT = 200
CONVERSATIONS = 64
ROUNDS = int(os.environ.get("AGENTLOG_TOOL_LOAD_ROUNDS", "1"))


async def _many_in_flight(client: ToolClient, prefix: str) -> list[str]:
    """The call ids of CALLS calls made with IN_FLIGHT outstanding at any time; each must
    answer (a ToolTimeout fails the test)."""
    slots = asyncio.Semaphore(IN_FLIGHT)
    ids: list[str] = []

    async def call(n: int) -> None:
        async with slots:
            pending = client.request(f"{prefix}conv-{n % CONVERSATIONS}", "add", {"a": n, "b": 1})
            ids.append(pending.tool_call_id)
            assert await pending.wait(60) == n + 1

    await asyncio.gather(*(call(n) for n in range(CALLS)))
    return ids


def _one_round(settings: Settings, tool_dir: Path, log: Path) -> None:
    create_topics(settings)
    worker = worker_process(settings, tool_dir, log, "--concurrency", "32", "--quiet")
    try:

        async def run() -> list[str]:
            async with ToolClient(settings, service="load", timeout=60) as client:
                return await _many_in_flight(client, "")

        ids = asyncio.run(run())
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, log.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
    assert settings.bootstrap_servers is not None
    records = read_all(settings.bootstrap_servers, settings.events_topic, expect=2 * CALLS)
    endings = Counter(
        dict(r.headers)["agentlog.tool-call-id"].decode()
        for r in records
        if "agentlog.tool-call-ended" in dict(r.headers)
    )
    requested = Counter(
        decode_event(r.value).payload.tool_call_id  # type: ignore[union-attr]
        for r in records
        if "agentlog.tool-call-ended" not in dict(r.headers)
    )
    assert set(requested) == set(ids) and len(ids) == CALLS
    assert {i for i in ids if endings[i] != 1} == set()
    assert set(endings) == set(ids)


def test_every_call_ends_once_with_hundreds_in_flight(settings: Settings, tmp_path: Path) -> None:
    for n in range(ROUNDS):
        fresh = settings.with_overrides(topic_prefix=f"load{uuid.uuid4().hex[:8]}.")
        # `add` keeps no files: the tool directory stays empty.
        _one_round(fresh, tmp_path, tmp_path / f"worker-{n}.log")
        print(f"round {n + 1} of {ROUNDS}: {CALLS} calls, each ended once")


def test_a_worker_never_commits_past_a_request_it_has_not_finished() -> None:
    part = _Partition(number=1, generation=1, committed=10, next_offset=15)
    part.unfinished.update({12, 13})  # handed 10..14: 12 still runs, 13 waits for a slot
    assert part.committable() == 12
    part.check_commit(12, "requests")
    for past in (13, 15, 16):
        with pytest.raises(CommitPastUnfinished, match=r"requests \[12"):
            part.check_commit(past, "requests")
    # An offset never handed (a gap in what Kafka delivered) is never committed past.
    part.unfinished.clear()
    assert part.committable() == 15
    part.check_commit(15, "requests")
    with pytest.raises(CommitPastUnfinished, match="from 15 on were never handed"):
        part.check_commit(17, "requests")


def test_status_shows_requests_pending_longer_than_their_timeout(
    settings: Settings, tmp_path: Path
) -> None:
    """A request no worker ended (none runs, or one passed over it) shows in `agentlog
    status` once it has waited longer than the bound, with the oldest named."""
    registry = ToolRegistry()

    @registry.tool
    def add(a: int, b: int) -> int:
        return a + b

    group = f"tools-{uuid.uuid4().hex[:8]}"
    assert settings.bootstrap_servers is not None
    with ToolClient(settings, timeout=60) as client:
        ended = [client.request("conv-1", "add", {"a": 1, "b": 2}) for _ in range(2)]
        ToolWorker(settings, registry, group=group, concurrency=4).run(once=True)
        assert [call.result(30) for call in ended] == [3, 3]
        waiting = [client.request(f"conv-{n}", "add", {"a": n, "b": 0}) for n in range(3)]
        # Two requests, their start markers, and the three nobody runs.
        read_all(settings.bootstrap_servers, settings.tool_requests_topic, expect=7)
    run = agentlog(
        "--bootstrap",
        settings.bootstrap_servers,
        "--topic-prefix",
        settings.topic_prefix,
        "status",
        "--group",
        group,
        "--pending-after",
        "0",
        state_dir=tmp_path,
    )
    assert run.code == 0, run.err
    assert "3 tool request(s) pending longer than 0s" in run.out
    assert any(call.tool_call_id in run.out for call in waiting)
    as_json = agentlog(
        "--bootstrap",
        settings.bootstrap_servers,
        "--topic-prefix",
        settings.topic_prefix,
        "status",
        "--group",
        group,
        "--format",
        "json",
        state_dir=tmp_path,
    )
    (worker_group,) = orjson.loads(as_json.out)["groups"]
    assert worker_group["overdue_requests"] == 0  # not yet a minute old


def test_requests_a_fetch_left_out_are_read_again_and_run(settings: Settings) -> None:
    """What Tansu 0.6 did under load, made on purpose: the worker is handed the records of
    a partition with some left out (a fetch answered with a later batch). It reads the
    gap again and runs those calls too; without that, they never ended."""
    registry = ToolRegistry()

    @registry.tool
    def add(a: int, b: int) -> int:
        return a + b

    assert settings.bootstrap_servers is not None
    with ToolClient(settings, timeout=60) as client:
        calls = [client.request("conv-gap", "add", {"a": n, "b": 1}) for n in range(10)]
        (record,) = {
            r.partition
            for r in read_all(settings.bootstrap_servers, settings.tool_requests_topic, expect=10)
        }
        handed = list(read_partitions(settings, settings.tool_requests_topic, partitions=[record]))
        assert len(handed) == 10
        worker = ToolWorker(settings, registry, group=f"gap-{uuid.uuid4().hex[:8]}")
        worker.member.track(record, 0)
        try:
            for message in handed[:3] + handed[7:]:  # offsets 3..6 left out of the fetch
                worker._take(message)
            while worker._in_flight or worker._waiting:
                worker._apply_answers(wait=True)
                worker._start_waiting()
        finally:
            worker._runner.close()
        assert [call.result(30) for call in calls] == [n + 1 for n in range(10)]
    endings = Counter(
        dict(r.headers)["agentlog.tool-call-id"].decode()
        for r in read_all(settings.bootstrap_servers, settings.events_topic, expect=20)
        if "agentlog.tool-call-ended" in dict(r.headers)
    )
    assert endings == Counter({call.tool_call_id: 1 for call in calls})
