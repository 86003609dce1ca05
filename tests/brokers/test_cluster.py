"""The promise users make to their auditors, "acks=all on a replicated log", checked as
Jepsen would at small scale, on a three-broker Apache Kafka cluster (`agentlog dev up
--engine kafka --brokers 3`: topics with 3 replicas, min.insync.replicas=2).

The leader of a partition is SIGKILLed while an agent records (spool off, then on),
while a projector projects and while a tool worker works; then the three brokers are
restarted one after the other under all of that load. An independent reader
(kafka-python + fastavro) counts: no event lost (every event the recorder did not report
failed is on the topic), none there twice, none applied twice by the projector (its sink
equals an independent fold of the topic), every tool call with exactly one ending, and
every service still running at the end.

Apache Kafka only (Tansu runs one broker); one cluster for the whole module.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import absent, engine_settings
from helpers import tool_fixtures, wait_for
from helpers.cli import TESTS, agentlog_process, clean_environment
from helpers.independent_fold import assert_sink_matches, decode_plain, fold
from helpers.kafka_python_reader import read_all

from agentlog import devbroker
from agentlog.consumers import open_sink
from agentlog.dev_state import DevBrokerNode, process_alive
from agentlog.devbroker import kafka as kafka_engine
from agentlog.errors import DevBrokerError, SinkError
from agentlog.kafka_config import admin_client
from agentlog.producers import ToolClient
from agentlog.settings import Settings
from agentlog.topics import create_topics, describe_topics

pytestmark = pytest.mark.starts_dev_broker

BROKERS = 3
RATE = 100  # events/s each recording agent sends: a steady load, not a benchmark
WAIT_S = 120  # the bound of every wait below (a loaded 2-core machine runs three JVMs)
ENDINGS = ("ToolCallCompleted", "ToolCallFailed")

# Figures for the report, printed at the end of the module (pytest -s, or -rA).
FIGURES: list[str] = []


@dataclass
class Cluster:
    """The running cluster: who leads what, killing and restarting brokers."""

    state: Settings  # the dev broker's own settings (its state directory)
    record: devbroker.DevBrokerRecord
    kills: int = 0
    restarts: list[float] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return self.record.bootstrap

    def node(self, node_id: int) -> DevBrokerNode:
        return next(node for node in self.record.nodes if node.node_id == node_id)

    def leader_of(self, settings: Settings, topic: str, partition: int = 0) -> DevBrokerNode:
        metadata = admin_client(settings).list_topics(topic, timeout=10)
        return self.node(metadata.topics[topic].partitions[partition].leader)

    def stop(self, node: DevBrokerNode, sig: signal.Signals) -> float:
        """Signal the broker; returns when it is gone (monotonic time of the signal)."""
        signalled = time.monotonic()
        assert node.running, f"broker {node.node_id} is already down"
        subprocess.run(["kill", f"-{sig.name}", str(node.pid)], check=True, timeout=10)
        wait_for(
            lambda: not process_alive(node.pid, b"kafka.Kafka"), WAIT_S, f"broker {node.node_id}"
        )
        if sig == signal.SIGKILL:
            self.kills += 1
        return signalled

    def restart_stopped(self) -> float:
        """`agentlog dev up` again (it starts the brokers that are down); then wait until
        every partition has all its replicas in sync. Returns how long that took."""
        began = time.monotonic()
        self.record = devbroker.start(self.state, wait_seconds=WAIT_S)
        wait_for(self.fully_in_sync, WAIT_S, "every replica back in sync")
        took = time.monotonic() - began
        self.restarts.append(took)
        return took

    def fully_in_sync(self) -> bool:
        settings = Settings(bootstrap_servers=self.bootstrap)
        try:
            metadata = admin_client(settings).list_topics(timeout=5)
        except Exception:
            return False
        return len(metadata.brokers) == BROKERS and all(
            partition.leader >= 0 and len(partition.isrs) == len(partition.replicas)
            for topic in metadata.topics.values()
            for partition in topic.partitions.values()
        )


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    state = engine_settings("kafka", tmp_path_factory.mktemp("cluster-state")).with_overrides(
        dev_brokers=BROKERS
    )
    try:
        kafka_engine.ensure_runnable(state)
        began = time.monotonic()
        record = devbroker.start(state, wait_seconds=WAIT_S)
    except DevBrokerError as exc:
        absent("kafka", f"a three-broker Kafka cluster cannot run here: {exc}")
        raise  # unreachable: absent() skips or fails
    FIGURES.append(f"cluster of {BROKERS} up in {time.monotonic() - began:.1f}s")
    running = Cluster(state, record)
    try:
        yield running
    finally:
        FIGURES.append(f"brokers RSS at the end: {_rss(running.record)}")
        began = time.monotonic()
        devbroker.stop(state, wipe=True)
        FIGURES.append(f"cluster down in {time.monotonic() - began:.1f}s")
        print("\n" + "\n".join(FIGURES))


def _rss(record: devbroker.DevBrokerRecord) -> str:
    sizes = []
    for node in record.nodes:
        try:
            status = Path(f"/proc/{node.pid}/status").read_text()
        except OSError:
            continue
        found = re.search(r"VmRSS:\s+(\d+) kB", status)
        sizes.append(int(found.group(1)) // 1024 if found else 0)
    return ", ".join(f"{size} MiB" for size in sizes) + f" (total {sum(sizes)} MiB)"


@pytest.fixture
def settings(cluster: Cluster, tmp_path: Path) -> Settings:
    """Topics of this test alone, made by `topics create` on the cluster; the producer's
    own delivery timeout (not the short one other tests use) rides out an election."""
    assert cluster.fully_in_sync(), "an earlier test left the cluster degraded"
    made = Settings(
        bootstrap_servers=cluster.bootstrap,
        topic_prefix=f"c{uuid.uuid4().hex[:8]}.",
        partitions=3,
        state_dir=tmp_path / "state",
        sink=f"duckdb:{tmp_path / 'projections.duckdb'}",
    )
    create_topics(made)
    return made


class Agent:
    """A recording_agent.py process recording at RATE until told to stop: event ids
    `<prefix>-0000-4000-8000-<index>`, a progress line per recording call returned, and at
    exit the count of events its on_error got."""

    def __init__(self, settings: Settings, work: Path, *, spool: bool) -> None:
        self.prefix = f"{uuid.uuid4().hex[:8]}"
        self.progress = work / f"agent-{self.prefix}.progress"
        self.out = self.progress.with_suffix(".out")
        self.until = self.progress.with_suffix(".stop")
        env = {
            "AGENTLOG_BOOTSTRAP_SERVERS": str(settings.bootstrap_servers),
            "AGENTLOG_TOPIC_PREFIX": settings.topic_prefix,
            "AGENTLOG_STATE_DIR": str(settings.state_dir),
            "AGENTLOG_EXIT_FLUSH_TIMEOUT_MS": str(WAIT_S * 1000),
        }
        # Said either way: whether the spool is on by default is not this test's business.
        env["AGENTLOG_SPOOL"] = "true" if spool else "false"
        if spool:
            env["AGENTLOG_SPOOL_DIR"] = str(work / f"spool-{self.prefix}")
        arguments = ["--count", str(RATE * 3600), "--rate", str(RATE), "--on-error"]
        arguments += ["--progress", str(self.progress), "--id-prefix", self.prefix]
        arguments += ["--until", str(self.until)]
        with open(self.out, "w") as out:
            self.process = subprocess.Popen(
                [sys.executable, str(TESTS / "helpers" / "recording_agent.py"), *arguments],
                env=clean_environment(env),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def recorded(self) -> int:
        if not self.progress.exists():
            return 0
        return self.progress.read_bytes().count(b"\n")

    def wait_for(self, count: int) -> None:
        def reached() -> bool:
            assert self.process.poll() is None, self.out.read_text()
            return self.recorded() >= count

        wait_for(reached, WAIT_S, f"the agent to record {count} events")

    def finish(self) -> set[str]:
        """Stops the recording (still running: it recorded through every fault), waits for
        the agent to exit, and returns the ids of the events it was not told failed (with
        the spool, every event it recorded)."""
        assert self.process.poll() is None, self.out.read_text()
        self.until.touch()
        self.process.wait(timeout=WAIT_S + 60)
        said = self.out.read_text()
        assert self.process.returncode == 0, said
        assert "Traceback" not in said, said
        reported = re.search(r"on_error received (\d+) event", said)
        assert reported is not None, said
        assert int(reported.group(1)) == 0, f"the recorder reported events undelivered: {said}"
        count = self.recorded()
        return {f"{self.prefix}-0000-4000-8000-{n:012d}" for n in range(count)}


def events_on_topic(settings: Settings, expect: int) -> list[dict]:
    """Every event of the events topic, read and decoded by kafka-python + fastavro."""
    records = read_all(settings.bootstrap_servers or "", settings.events_topic, expect=expect)
    events = [decode_plain(record.value) for record in records]
    assert None not in events, "a record on the topic is not an event"
    return events  # type: ignore[return-value]


def assert_each_once(delivered: set[str], events: list[dict], what: str) -> None:
    """Every delivered id on the topic, and no id there twice."""
    counts = Counter(event["event_id"] for event in events)
    lost = delivered - set(counts)
    doubled = {event_id: n for event_id, n in counts.items() if n > 1}
    FIGURES.append(f"{what}: {len(delivered)} events, lost {len(lost)}, doubled {len(doubled)}")
    assert not lost, f"{len(lost)} delivered events are not on the topic, e.g. {min(lost)}"
    assert not doubled, f"{len(doubled)} events are on the topic more than once"


def kill_leader_while(cluster: Cluster, settings: Settings, topic: str, what: str) -> None:
    """SIGKILL the leader of partition 0 of `topic`; note how long until another broker
    leads it; then bring the killed one back and wait until it is in sync again."""
    victim = cluster.leader_of(settings, topic)
    killed_at = cluster.stop(victim, signal.SIGKILL)

    def new_leader() -> bool:
        try:
            return cluster.leader_of(settings, topic).node_id != victim.node_id
        except Exception:
            return False

    wait_for(new_leader, WAIT_S, f"a new leader of {topic}[0]")
    elected = time.monotonic() - killed_at
    back = cluster.restart_stopped()
    FIGURES.append(
        f"{what}: killed broker {victim.node_id} (leader of {topic}[0]); new leader after "
        f"{elected:.1f}s; broker back and every replica in sync {back:.1f}s after restart"
    )


def projector(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    return agentlog_process(
        "--bootstrap",
        str(settings.bootstrap_servers),
        "--topic-prefix",
        settings.topic_prefix,
        "--state-dir",
        str(settings.state_dir),
        "project",
        "run",
        "--sink",
        str(settings.sink_url),
        "--batch-size",
        "500",
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


def applied(settings: Settings) -> int:
    """Events the running projector has applied, as its latest published snapshot of the
    DuckDB file says (0 before it published one)."""
    try:
        with open_sink(str(settings.sink_url), read_only=True) as sink:
            return sum(sink.stored_offsets("agentlog-projector", settings.events_topic).values())
    except SinkError:
        return 0


def caught_up(
    process: subprocess.Popen[bytes], log: Path, settings: Settings, events: int
) -> Callable[[], bool]:
    """A condition: the projector applied `events` (failing at once if it exited)."""

    def check() -> bool:
        assert process.poll() is None, f"project run exited: {log.read_text()[-2000:]}"
        return applied(settings) >= events

    return check


def assert_running_then_stop(process: subprocess.Popen[bytes], log: Path, name: str) -> None:
    """The service outlived the faults: still running, and it stops cleanly."""
    assert process.poll() is None, f"{name} exited: {log.read_text()[-2000:]}"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0, log.read_text()[-2000:]


def assert_projection_exact(settings: Settings, written: int) -> None:
    """The sink equals an independent fold of the topic: nothing applied twice or missed."""
    expected = fold(read_all(settings.bootstrap_servers or "", settings.events_topic, written))
    with open_sink(str(settings.sink_url)) as sink:
        assert_sink_matches(sink, expected)


def test_recording_and_projecting_through_a_leader_killed_lose_nothing(
    cluster: Cluster, settings: Settings, tmp_path: Path
) -> None:
    """Two agents record through the same SIGKILL of a leader, one with the spool off
    (the producer alone must ride out the election), one with it on, while a projector
    projects: every event once on the topic, and once in the projections."""
    described = {topic.name: topic for topic in describe_topics(settings)}
    events_topic = described[settings.events_topic]
    assert events_topic.replication_factor == BROKERS
    assert events_topic.config["min.insync.replicas"] == "2"

    log = tmp_path / "projector.log"
    running = projector(settings, log)
    try:
        agents = {spool: Agent(settings, tmp_path, spool=spool) for spool in (False, True)}
        wait_for(caught_up(running, log, settings, 1_000), WAIT_S, "the projector to apply 1,000")
        kill_leader_while(cluster, settings, settings.events_topic, "recording and projecting")
        delivered = {spool: agent.finish() for spool, agent in agents.items()}
        written = sum(map(len, delivered.values()))
        finished = time.monotonic()
        wait_for(caught_up(running, log, settings, written), WAIT_S, "the projector to catch up")
        took = time.monotonic() - finished
        FIGURES.append(f"projection: caught up {took:.1f}s after the agents finished")
        assert_running_then_stop(running, log, "project run")
    finally:
        running.kill()
    events = events_on_topic(settings, written)
    for spool, ids in delivered.items():
        mine = [event for event in events if event["event_id"].startswith(agents[spool].prefix)]
        assert_each_once(ids, mine, f"recording, spool {'on' if spool else 'off'}")
    assert applied(settings) == written
    assert_projection_exact(settings, written)


def tool_worker(settings: Settings, tool_dir: Path, log: Path) -> subprocess.Popen[bytes]:
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
        "--group",
        f"tools-{settings.topic_prefix}",
        "--concurrency",
        "8",
        env={"AGENTLOG_TEST_TOOL_DIR": str(tool_dir)},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def tool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    where = tmp_path / "tools"
    where.mkdir()
    monkeypatch.setenv("AGENTLOG_TEST_TOOL_DIR", str(where))
    return where


def assert_one_ending_each(settings: Settings, call_ids: set[str], what: str) -> None:
    """Each call ended exactly once on the events topic, and had its effect once."""
    events = read_all(settings.bootstrap_servers or "", settings.events_topic)
    endings = Counter(
        event["payload"][1]["tool_call_id"]
        for event in map(decode_plain, (record.value for record in events))
        if event is not None and event["payload"][0].rsplit(".", 1)[-1] in ENDINGS
    )
    missing = call_ids - set(endings)
    doubled = {call_id: n for call_id, n in endings.items() if n != 1}
    FIGURES.append(
        f"{what}: {len(call_ids)} tool calls, without an ending {len(missing)}, "
        f"ended twice {len(doubled)}"
    )
    assert not missing, f"{len(missing)} tool calls never ended"
    assert not doubled, f"{len(doubled)} tool calls ended more than once"
    effects = tool_fixtures.lines("effects")
    assert len(effects) == len(set(effects)), "a tool call had its effect twice"


def test_tool_calls_through_a_leader_killed_end_once_each(
    cluster: Cluster, settings: Settings, tool_dir: Path, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    worker = tool_worker(settings, tool_dir, log)
    try:
        with ToolClient(settings, timeout=WAIT_S) as tools:
            calls = [
                tools.request(f"conv-{n % 31}", "record_effect", {"n": n, "sleep_ms": 2})
                for n in range(600)
            ]
            wait_for(
                lambda: len(tool_fixtures.lines("effects")) >= 100, WAIT_S, "the first 100 calls"
            )
            kill_leader_while(cluster, settings, settings.tool_requests_topic, "tool calls")
            results = [call.result() for call in calls]
        assert [result["n"] for result in results] == list(range(600))
        assert_running_then_stop(worker, log, "tools work")
    finally:
        worker.kill()
    assert_one_ending_each(settings, {call.tool_call_id for call in calls}, "tool calls")


def test_a_rolling_restart_under_load_loses_nothing_and_stops_no_service(
    cluster: Cluster, settings: Settings, tool_dir: Path, tmp_path: Path
) -> None:
    """Each broker in turn stopped (SIGTERM, a clean shutdown) and started again once the
    previous one is back in sync, while an agent records with the spool on, a projector
    projects and a tool worker runs calls."""
    projector_log, worker_log = tmp_path / "projector.log", tmp_path / "worker.log"
    services = [projector(settings, projector_log), tool_worker(settings, tool_dir, worker_log)]
    try:
        agent = Agent(settings, tmp_path, spool=True)
        agent.wait_for(2_000)
        with ToolClient(settings, timeout=WAIT_S) as tools:
            calls = []
            for node_id in range(1, BROKERS + 1):
                calls += [
                    tools.request(f"conv-{n % 31}", "record_effect", {"n": n})
                    for n in range(len(calls), len(calls) + 150)
                ]
                cluster.stop(cluster.node(node_id), signal.SIGTERM)
                took = cluster.restart_stopped()
                FIGURES.append(f"rolling restart: broker {node_id} back in sync in {took:.1f}s")
                assert agent.process.poll() is None, agent.out.read_text()
            results = [call.result() for call in calls]
        assert [result["n"] for result in results] == list(range(len(calls)))
        delivered = agent.finish()
        total = len(delivered) + 2 * len(calls)
        wait_for(caught_up(services[0], projector_log, settings, total), WAIT_S, "the projector")
        assert_running_then_stop(services[0], projector_log, "project run")
        assert_running_then_stop(services[1], worker_log, "tools work")
    finally:
        for service in services:
            service.kill()
    everything = events_on_topic(settings, total)
    recorded = [e for e in everything if e["event_id"].startswith(agent.prefix)]
    assert_each_once(delivered, recorded, "rolling restart, recording")
    assert_one_ending_each(settings, {call.tool_call_id for call in calls}, "rolling restart")
    assert_projection_exact(settings, total)


def test_dev_status_names_every_broker(cluster: Cluster) -> None:
    from helpers.cli import agentlog

    run = agentlog(
        "dev",
        "status",
        state_dir=cluster.state.state_dir,
        env={"AGENTLOG_KAFKA_JARS_DIR": str(cluster.state.kafka_jars_dir)},
    )
    assert run.code == 0, run.err
    for node in cluster.record.nodes:
        assert f"broker {node.node_id} at 127.0.0.1:{node.port}" in run.out
    assert run.out.count(", running,") == BROKERS
