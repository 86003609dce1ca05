"""Async tool execution: agents request tool calls and await them; a pool of tool workers
runs them, and every call ends in exactly one completed or failed event, through
retries, timeouts, crashes and rebalances."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from helpers import tool_fixtures, wait_for
from helpers.cli import agentlog, agentlog_process
from helpers.kafka_python_reader import read_all
from helpers.tool_fixtures import BACKOFF, SLEEPY_TIMEOUT, invocations, lines
from helpers.workers import worker_thread

from agentlog.consumers import ToolRegistry, ToolWorker
from agentlog.consumers.tools._registry import bind_arguments, run_attempt
from agentlog.errors import ConfigurationError, ToolError, ToolTimeout
from agentlog.events import Event
from agentlog.producers import ToolClient
from agentlog.serde import decode_event
from agentlog.settings import Settings
from agentlog.topics import create_topics

ENDINGS = ("tool_call_completed", "tool_call_failed")


@pytest.fixture
def tool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the test tools write what they did (tool_fixtures)."""
    where = tmp_path / "tools"
    where.mkdir()
    monkeypatch.setenv("AGENTLOG_TEST_TOOL_DIR", str(where))
    return where


def events_of(settings: Settings, expect: int | None = None) -> list[Event]:
    """Every event on the events topic, read with kafka-python (not librdkafka)."""
    assert settings.bootstrap_servers is not None
    records = read_all(settings.bootstrap_servers, settings.events_topic, expect=expect)
    return [decode_event(r.value) for r in records]


def endings_by_call(events: list[Event]) -> dict[str, list[Event]]:
    found: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        if event.event_type in ENDINGS:
            found[event.payload.tool_call_id].append(event)  # type: ignore[union-attr]
    return found


def worker_process(
    settings: Settings, tool_dir: Path, log: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """`agentlog tools work tool_fixtures:tools` in a subprocess."""
    return agentlog_process(
        "--bootstrap",
        str(settings.bootstrap_servers),
        "--topic-prefix",
        settings.topic_prefix,
        "--state-dir",
        str(settings.state_dir),
        "tools",
        "work",
        "helpers.tool_fixtures:tools",
        # One group per test: a group of the same name on the broker may still be settling
        # after an earlier test killed a member.
        "--group",
        f"tools-{settings.topic_prefix}",
        *args,
        env={"AGENTLOG_TEST_TOOL_DIR": str(tool_dir), **(env or {})},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


def already_ended(log: Path) -> int:
    """How many requests a stopped worker found ended in the log (its last line)."""
    found = re.search(r"already ended (\d+)", log.read_text().splitlines()[-1])
    assert found is not None, log.read_text()
    return int(found.group(1))


# -- the awaiting agent ---------------------------------------------------------------


def test_the_awaiting_agent_gets_results_and_errors(settings: Settings, tool_dir: Path) -> None:
    async def agent(tools: ToolClient) -> list[object]:
        calls = [
            tools.request("conv-a", "add", {"a": 2, "b": 3}, agent="billing"),
            tools.request("conv-b", "refuse", agent="billing"),
            tools.request("conv-c", "sleepy", {"seconds": 5}),
            tools.request("conv-d", "no_such_tool"),
            tools.request("conv-e", "add", {"a": 2}),
        ]
        return await asyncio.gather(*(call.wait(30) for call in calls), return_exceptions=True)

    with worker_thread(settings), ToolClient(settings, service="support-bot") as tools:
        added, refused, slept, unknown, bad_arguments = asyncio.run(agent(tools))
        # The blocking form, from synchronous agent code.
        assert tools.request("conv-a", "add", {"a": 40, "b": 2}).result(timeout=30) == 42

    assert added == 5
    assert isinstance(refused, ToolError)
    assert (refused.error_type, refused.attempt, refused.retryable) == ("ValueError", 1, False)
    assert "INV-9 does not exist" in str(refused)
    assert isinstance(slept, ToolError) and slept.error_type == "TimeoutError"
    assert f"within {SLEEPY_TIMEOUT:g}s" in slept.error_message
    assert isinstance(unknown, ToolError) and unknown.error_type == "UnknownTool"
    assert "no_such_tool" in unknown.error_message
    assert isinstance(bad_arguments, ToolError) and bad_arguments.error_type == "ArgumentsError"
    assert "'b'" in bad_arguments.error_message

    events = events_of(settings, expect=12)
    endings = endings_by_call(events)
    assert len(endings) == 6
    assert all(len(found) == 1 for found in endings.values())
    by_type = Counter(e.event_type for e in events)
    assert by_type == {"tool_call_requested": 6, "tool_call_completed": 2, "tool_call_failed": 4}
    requested = {e.payload.tool_call_id: e for e in events if e.event_type == "tool_call_requested"}  # type: ignore[union-attr]
    for call_id, (ending,) in endings.items():
        # Each ending answers its request, in the request's conversation and partition.
        assert ending.causation_id == requested[call_id].event_id
        assert ending.conversation_id == requested[call_id].conversation_id
    first = next(e for e in events if e.conversation_id == "conv-a")
    assert first.source.service == "support-bot" and first.source.agent == "billing"
    assert len(invocations()) == 2  # refuse once, sleepy once: nothing retried


def test_no_result_in_time_is_a_clear_timeout(settings: Settings) -> None:
    with ToolClient(settings, timeout=0.3) as tools:
        call = tools.request("conv-1", "lookup_invoice", {"invoice_id": "INV-1"})
        with pytest.raises(
            ToolTimeout, match=r"lookup_invoice.*no result within 0\.3s.*tools work"
        ):
            call.result()

        async def awaiting() -> None:
            with pytest.raises(ToolTimeout, match=r"within 0\.2s"):
                await call.wait(0.2)
            with pytest.raises(ToolTimeout, match=r"within 0\.3s"):
                await call

        asyncio.run(awaiting())
        assert not call.done()
    # Closing gives up on calls without an ending.
    with pytest.raises(ToolTimeout, match="closed before"):
        call.result()


def test_many_awaits_hold_no_thread_each(
    settings: Settings, tool_dir: Path, tmp_path: Path
) -> None:
    async def agent(tools: ToolClient) -> list[object]:
        calls = [tools.request(f"conv-{i % 7}", "add", {"a": i, "b": 1}) for i in range(300)]
        return await asyncio.gather(*(call.wait(60) for call in calls))

    worker = worker_process(settings, tool_dir, tmp_path / "worker.log")
    try:
        with ToolClient(settings) as tools:
            threads_before = threading.active_count()
            results = asyncio.run(agent(tools))
            assert threading.active_count() == threads_before
    finally:
        worker.terminate()
        worker.wait(30)
    assert results == [i + 1 for i in range(300)]


# -- retries, failures, timeouts ------------------------------------------------------


def test_a_transient_failure_is_retried_with_backoff_then_succeeds(
    settings: Settings, tool_dir: Path
) -> None:
    with worker_thread(settings), ToolClient(settings) as tools:
        flaky = tools.request("conv-1", "flaky", {"fail_times": 2})
        down = tools.request("conv-2", "flaky", {"fail_times": 99})
        assert flaky.result(timeout=30) == "finally"
        with pytest.raises(ToolError) as failed:
            down.result(timeout=30)

    events = events_of(settings, expect=8)
    calls = defaultdict(list)
    for event in events:
        calls[event.payload.tool_call_id].append(event)  # type: ignore[union-attr]
    retried = calls[flaky.tool_call_id]
    assert [(e.event_type, e.payload.attempt) for e in retried] == [  # type: ignore[union-attr]
        ("tool_call_requested", 1),
        ("tool_call_requested", 2),
        ("tool_call_requested", 3),
        ("tool_call_completed", 3),
    ]
    # Attempts 2 and 3 are recorded by the worker, after a backoff that doubles (each
    # waits a random half to all of it).
    gaps = [
        (b.occurred_at - a.occurred_at).total_seconds()
        for a, b in zip(retried, retried[1:], strict=False)
    ]
    assert gaps[0] >= BACKOFF / 2 and gaps[1] >= BACKOFF
    assert retried[1].source.service == "agentlog-tools"
    assert len(invocations(flaky.tool_call_id)) == 3

    # A transient failure that outlasts the attempts ends in one failed event.
    assert (failed.value.error_type, failed.value.attempt) == ("ConnectionError", 3)
    assert failed.value.retryable
    assert [e.event_type for e in calls[down.tool_call_id]].count("tool_call_failed") == 1
    assert len(invocations(down.tool_call_id)) == 3


def test_backoff_doubles_up_to_its_ceiling() -> None:
    registry = ToolRegistry(backoff=0.1, max_backoff=0.3)
    spec = registry.add(lambda: None, name="noop")
    for _ in range(50):
        assert 0.05 <= spec.backoff_before(2) <= 0.1
        assert 0.1 <= spec.backoff_before(3) <= 0.2
        assert 0.15 <= spec.backoff_before(9) <= 0.3


def test_which_exceptions_are_transient_is_declared_per_registry_or_tool() -> None:
    registry = ToolRegistry(transient=(ConnectionError,), timeout=0.2)

    @registry.tool
    def refused() -> None:
        raise ConnectionRefusedError("port 5432")

    @registry.tool(transient=(TimeoutError,))
    async def hangs() -> None:
        await asyncio.sleep(5)

    @registry.tool
    def wrong() -> None:
        raise KeyError("total")

    async def outcomes() -> list:  # type: ignore[type-arg]
        return [await run_attempt(registry.get(n), {}, None) for n in ("refused", "hangs", "wrong")]  # type: ignore[arg-type]

    refused_outcome, hangs_outcome, wrong_outcome = asyncio.run(outcomes())
    assert (refused_outcome.error_type, refused_outcome.transient) == (
        "ConnectionRefusedError",
        True,
    )
    assert (hangs_outcome.error_type, hangs_outcome.transient) == ("TimeoutError", True)
    assert hangs_outcome.error_message == "hangs did not finish within 0.2s"
    assert (wrong_outcome.error_type, wrong_outcome.transient) == ("KeyError", False)


def test_the_call_id_reaches_a_tool_that_asks_for_it() -> None:
    registry = ToolRegistry()
    with_key = registry.add(lambda n, *, tool_call_id: (n, tool_call_id), name="with_key")
    without = registry.add(lambda n: n, name="without")
    assert bind_arguments(with_key, {"n": 1}, "call_1") == {"n": 1, "tool_call_id": "call_1"}
    assert bind_arguments(without, {"n": 1}, "call_1") == {"n": 1}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"attempts": 0}, "attempts must be a whole number >= 1, got 0"),
        ({"timeout": -1}, "timeout must be a positive number, got -1"),
        ({"transient": ("ConnectionError",)}, "transient must be exception classes"),
    ],
)
def test_a_registry_refuses_settings_that_cannot_work(kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigurationError, match=message):
        ToolRegistry(**kwargs)


# -- crashes, rebalances, stopping ----------------------------------------------------


def test_a_worker_killed_after_ending_calls_before_committing_them_runs_none_again(
    settings: Settings, tool_dir: Path, tmp_path: Path
) -> None:
    """The worker dies with 20 ended calls not committed (it commits once a minute
    here); the next worker is handed them again and finds them ended in the log."""
    never_commits = {"AGENTLOG_TOOL_COMMIT_INTERVAL_MS": "600000"}
    first = worker_process(settings, tool_dir, tmp_path / "first.log", env=never_commits)
    try:
        with ToolClient(settings) as tools:
            done = [tools.request("conv-1", "record_effect", {"n": n}) for n in range(20)]
            assert [c.result(timeout=60)["n"] for c in done] == list(range(20))
            crash = tools.request("conv-1", "kill_once")
            assert first.wait(timeout=60) == -signal.SIGKILL
            second = worker_process(settings, tool_dir, tmp_path / "second.log", "--once")
            assert second.wait(timeout=90) == 0, (tmp_path / "second.log").read_text()
            assert crash.result(timeout=10) == "survived"
    finally:
        first.kill()
    assert already_ended(tmp_path / "second.log") == 20
    # Nothing ran twice but the call the crash interrupted.
    assert Counter(invocations()).most_common(2)[1][1] == 1
    assert len(invocations(crash.tool_call_id)) == 2
    endings = endings_by_call(events_of(settings, expect=42))
    assert len(endings) == 21 and all(len(found) == 1 for found in endings.values())


def test_a_call_that_kills_every_worker_ends_after_its_attempts(
    settings: Settings, tool_dir: Path, tmp_path: Path
) -> None:
    """Each worker that runs it dies, having marked its attempt started; the worker
    after the last attempt ends the call instead of running it again."""
    with ToolClient(settings) as tools:
        call = tools.request("conv-1", "crash_always")
        for name in ("first", "second"):
            worker = worker_process(settings, tool_dir, tmp_path / f"{name}.log")
            assert worker.wait(timeout=90) == -signal.SIGKILL
        third = worker_process(settings, tool_dir, tmp_path / "third.log", "--once")
        assert third.wait(timeout=90) == 0, (tmp_path / "third.log").read_text()
        with pytest.raises(ToolError) as failed:
            call.result(timeout=10)
    assert (failed.value.error_type, failed.value.attempt) == ("WorkerLost", 2)
    assert "attempt 2 of 2 was started by a worker that stopped" in failed.value.error_message
    assert len(invocations()) == 2
    events = events_of(settings, expect=3)
    assert [(e.event_type, e.payload.attempt) for e in events] == [  # type: ignore[union-attr]
        ("tool_call_requested", 1),
        ("tool_call_requested", 2),
        ("tool_call_failed", 2),
    ]


def test_a_thousand_calls_through_three_workers_one_killed_end_once_each(
    settings: Settings, tool_dir: Path, tmp_path: Path
) -> None:
    # The worker to be killed never commits, so it leaves every call it ended
    # uncommitted behind it; the others commit as usual.
    never_commits = {"AGENTLOG_TOOL_COMMIT_INTERVAL_MS": "600000"}
    workers = [
        worker_process(
            settings,
            tool_dir,
            tmp_path / f"worker{i}.log",
            "--concurrency",
            "8",
            env=never_commits if i == 1 else None,
        )
        for i in range(3)
    ]
    try:
        with ToolClient(settings, timeout=120) as tools:
            # Until every worker has run something, the group is still forming.
            pids: set[int] = set()
            warm_up: list = []  # type: ignore[type-arg]
            deadline = time.monotonic() + 90
            while len(pids) < 3 and time.monotonic() < deadline:
                batch = [tools.request(f"warm-{i}", "record_effect", {"n": i}) for i in range(30)]
                pids |= {call.result()["pid"] for call in batch}
                warm_up += batch
            assert len(pids) == 3, "the three workers did not all get partitions"

            calls = [
                tools.request(f"conv-{n % 97}", "record_effect", {"n": n, "sleep_ms": 5})
                for n in range(1000)
            ]
            wait_for(lambda: len(lines("effects")) >= 400, 60, "the first 400 effects")
            victim = workers[1]
            victim.send_signal(signal.SIGKILL)
            results = [call.result() for call in calls]
        assert [r["n"] for r in results] == list(range(1000))
        assert victim.wait(timeout=10) == -signal.SIGKILL
        for survivor in (workers[0], workers[2]):
            survivor.send_signal(signal.SIGTERM)
            assert survivor.wait(timeout=60) == 0
    finally:
        for worker in workers:
            worker.kill()

    call_ids = {call.tool_call_id for call in calls}
    events = events_of(settings, expect=2 * (len(calls) + len(warm_up)))
    endings = endings_by_call(events)
    assert call_ids <= set(endings)
    assert {call_id: len(found) for call_id, found in endings.items() if len(found) != 1} == {}
    assert all(found[0].event_type == "tool_call_completed" for found in endings.values())
    # Every side effect happened once, though the killed worker's calls in flight ran again.
    effects = lines("effects")
    assert len(effects) == len(set(effects)) == len(endings)
    # The survivors found the killed worker's ended calls in the log, and ran only the
    # ones it had not ended.
    skipped = already_ended(tmp_path / "worker0.log") + already_ended(tmp_path / "worker2.log")
    assert skipped > 0
    rerun = len(invocations()) - len(set(invocations()))
    print(f"killed worker's ended calls skipped: {skipped}, calls run again: {rerun}")


def test_sigterm_finishes_the_calls_in_flight_then_stops(
    settings: Settings, tool_dir: Path, tmp_path: Path
) -> None:
    worker = worker_process(settings, tool_dir, tmp_path / "worker.log")
    try:
        with ToolClient(settings) as tools:
            call = tools.request("conv-1", "record_effect", {"n": 7, "sleep_ms": 1500})
            wait_for(lambda: invocations(call.tool_call_id), 60, "the call to start")
            worker.send_signal(signal.SIGTERM)
            assert call.result(timeout=30)["n"] == 7
            assert worker.wait(timeout=30) == 0
    finally:
        worker.kill()
    assert "completed 1," in (tmp_path / "worker.log").read_text()
    # Its request was committed: a worker of the same group finds nothing left to run.
    again = worker_process(settings, tool_dir, tmp_path / "again.log", "--once")
    assert again.wait(timeout=60) == 0
    assert "completed 0," in (tmp_path / "again.log").read_text()
    assert len(invocations()) == 1


def test_sigterm_stops_a_worker_whose_sync_tool_hangs_past_its_timeout(
    settings: Settings, tool_dir: Path, tmp_path: Path
) -> None:
    worker = worker_process(settings, tool_dir, tmp_path / "worker.log")
    try:
        with ToolClient(settings) as tools:
            with pytest.raises(ToolError, match="TimeoutError: hang did not finish within"):
                tools.request("conv-1", "hang").result(timeout=60)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    finally:
        worker.kill()
    assert "1 sync tool call(s) still running" in (tmp_path / "worker.log").read_text()


def test_a_record_that_is_not_a_request_is_dead_lettered(
    settings: Settings, tool_dir: Path
) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    producer.produce(settings.tool_requests_topic, b"not avro", b"conv-x", partition=0)
    producer.flush(10)
    with worker_thread(settings) as worker, ToolClient(settings) as tools:
        assert tools.request("conv-1", "add", {"a": 1, "b": 1}).result(timeout=30) == 2
        wait_for(lambda: worker.progress.dead_lettered == 1, 30, "the dead letter")
    assert settings.bootstrap_servers is not None
    (dead,) = read_all(settings.bootstrap_servers, settings.dlq_topic, expect=1)
    assert dead.value == b"not avro"
    assert dict(dead.headers)["agentlog.origin.topic"] == settings.tool_requests_topic.encode()


def test_topics_whose_partition_counts_differ_are_refused(settings: Settings) -> None:
    from confluent_kafka.admin import NewTopic

    from agentlog.kafka_config import admin_client

    odd = settings.with_overrides(topic_prefix=f"odd{uuid.uuid4().hex[:6]}.")
    admin = admin_client(odd)
    created = admin.create_topics(
        [NewTopic(odd.events_topic, 2, 1), NewTopic(odd.tool_requests_topic, 3, 1)]
    )
    for future in created.values():
        future.result(30)

    def both_visible() -> bool:
        topics = admin.list_topics(timeout=10).topics
        return odd.events_topic in topics and odd.tool_requests_topic in topics

    wait_for(both_visible, 30, "the new topics in the metadata")
    with pytest.raises(ConfigurationError, match="has 2 partitions but .* has 3"):
        ToolClient(odd)
    with pytest.raises(ConfigurationError, match="has 2 partitions but .* has 3"):
        ToolWorker(odd, tool_fixtures.tools)


# -- the command line -----------------------------------------------------------------


@pytest.mark.parametrize(
    "registry, message",
    [
        ("no_such_module:tools", "error: cannot import 'no_such_module'"),
        (
            "helpers.tool_fixtures:nothing",
            "error: module 'helpers.tool_fixtures' has no attribute 'nothing'",
        ),
        (
            "helpers.tool_fixtures:BACKOFF",
            "error: 'helpers.tool_fixtures:BACKOFF' is a float, not a ToolRegistry",
        ),
        ("tool_fixtures", "error: tool registry 'tool_fixtures' is not MODULE:NAME"),
    ],
)
def test_a_registry_that_cannot_be_loaded_is_one_line(
    registry: str, message: str, tmp_path: Path
) -> None:
    run = agentlog("tools", "work", registry, state_dir=tmp_path)
    assert run.code == 1
    assert run.err.strip().startswith(message), run.err
    assert len(run.err.strip().splitlines()) == 1


def test_tail_names_the_start_markers_on_the_tool_requests_topic(
    settings: Settings, tool_dir: Path, tmp_path: Path
) -> None:
    with worker_thread(settings), ToolClient(settings) as tools:
        call = tools.request("conv-1", "add", {"a": 1, "b": 1})
        assert call.result(timeout=30) == 2
    run = agentlog(
        "--bootstrap",
        str(settings.bootstrap_servers),
        "--topic-prefix",
        settings.topic_prefix,
        "tail",
        "--topic",
        "tool-requests",
        state_dir=tmp_path,
    )
    assert run.code == 0, run.err
    lines_out = run.out.splitlines()
    assert "tool_call_requested" in lines_out[0] and call.tool_call_id in lines_out[0]
    assert lines_out[1].endswith(
        f"a tool worker's start marker: attempt 1 of tool call {call.tool_call_id} began"
    )


def test_tools_work_needs_a_broker_and_says_so(tmp_path: Path) -> None:
    run = agentlog("tools", "work", "helpers.tool_fixtures:tools", state_dir=tmp_path)
    assert run.code == 1
    assert "no Kafka configured" in run.err


def test_a_client_and_a_worker_start_right_after_the_topics_are_created(
    settings: Settings,
) -> None:
    """Kafka's metadata can lag behind a topic's creation; create_topics waits for it."""
    for _ in range(5):
        fresh = settings.with_overrides(topic_prefix=f"f{uuid.uuid4().hex[:8]}.")
        create_topics(fresh)
        ToolClient(fresh).close()
