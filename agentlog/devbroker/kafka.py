"""Apache Kafka itself as the dev broker: KRaft combined mode (each broker is also a
controller), run by the local `java`, its log on disk under the state directory. One
broker by default; `--brokers 3` runs a replicated cluster on loopback (every broker a
voter of the controller quorum, topics with three replicas of which two must have each
write).

The jars come from an unpacked Apache Kafka distribution (`AGENTLOG_KAFKA_HOME`) or are
resolved once with Maven from the pom shipped beside this module into a cache.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from agentlog.dev_state import DevBrokerNode, DevBrokerRecord
from agentlog.devbroker._process import (
    brokers_listed,
    free_port,
    log_tail,
    port_is_free,
    wait_until_answering,
)
from agentlog.errors import DevBrokerError
from agentlog.private_files import open_private_append, private_dir
from agentlog.settings import Settings

KAFKA_VERSION = "4.1.1"
MAIN_CLASS = "kafka.Kafka"
_RESOLVE_SECONDS = 600
_FORMAT_SECONDS = 120


@dataclass(frozen=True)
class _NodeFiles:
    """Where one broker keeps its log, configuration and output. One broker keeps the
    layout of earlier versions (data/, server.properties, broker.log); a cluster gives
    node i data-i/, server-i.properties and broker-i.log."""

    node_id: int
    data_dir: Path
    config: Path
    log_file: Path


def _node_files(settings: Settings, brokers: int) -> list[_NodeFiles]:
    home = settings.state_dir / "kafka"
    if brokers == 1:
        return [_NodeFiles(1, home / "data", home / "server.properties", home / "broker.log")]
    return [
        _NodeFiles(i, home / f"data-{i}", home / f"server-{i}.properties", home / f"broker-{i}.log")
        for i in range(1, brokers + 1)
    ]


def data_dir(settings: Settings, brokers: int = 1) -> Path:
    """The log directory of one broker, or of the first broker of a cluster."""
    return _node_files(settings, brokers)[0].data_dir


def _java(settings: Settings) -> str:
    java_home = os.environ.get("JAVA_HOME")
    candidates = [Path(java_home) / "bin" / "java"] if java_home else []
    found = shutil.which("java")
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise DevBrokerError(
        "Apache Kafka needs Java 17 or newer and none was found: install it "
        "(e.g. `apt-get install openjdk-17-jre-headless`) or set JAVA_HOME"
    )


def _version_of(libs: Path) -> str | None:
    for jar in libs.glob("kafka_2.13-*.jar"):
        match = re.fullmatch(r"kafka_2\.13-(\d[\w.\-]*?)\.jar", jar.name)
        if match and not jar.name.endswith(("-test.jar", "-sources.jar", "-javadoc.jar")):
            return match.group(1)
    return None


def jars_dir(settings: Settings) -> Path:
    return settings.kafka_jars_dir or settings.state_dir / "kafka" / f"jars-{KAFKA_VERSION}"


def _resolve_jars(settings: Settings) -> Path:
    """The cached jars, resolved with Maven on first use (write to a temporary folder,
    then rename, so a cut-short resolution never passes for a complete one)."""
    target = jars_dir(settings)
    if _version_of(target):
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise DevBrokerError(
            "the kafka engine needs Apache Kafka's jars: install Maven (`apt-get install "
            "maven`) so agentlog can fetch them from Maven Central, or set "
            "AGENTLOG_KAFKA_HOME to an unpacked Apache Kafka 4.x distribution"
        )
    private_dir(target.parent)
    # A new folder of an unguessable name: nothing planted there can redirect Maven.
    partial = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.partial-"))
    pom = resources.files("agentlog.devbroker").joinpath("pom.xml")
    with resources.as_file(pom) as pom_path:
        try:
            done = subprocess.run(
                [
                    mvn,
                    "-q",
                    "-B",
                    "-f",
                    str(pom_path),
                    f"-Dkafka.version={KAFKA_VERSION}",
                    "dependency:copy-dependencies",
                    "-DincludeScope=runtime",
                    f"-DoutputDirectory={partial}",
                ],
                capture_output=True,
                text=True,
                timeout=_RESOLVE_SECONDS,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            shutil.rmtree(partial, ignore_errors=True)
            raise DevBrokerError(
                f"Maven did not resolve Apache Kafka {KAFKA_VERSION} within "
                f"{_RESOLVE_SECONDS}s; check access to Maven Central or set AGENTLOG_KAFKA_HOME"
            ) from None
    if done.returncode != 0 or not _version_of(partial):
        shutil.rmtree(partial, ignore_errors=True)
        errors = [line for line in (done.stdout + done.stderr).splitlines() if "ERROR" in line]
        detail = errors[0].strip() if errors else f"exit code {done.returncode}"
        raise DevBrokerError(
            f"Maven could not resolve Apache Kafka {KAFKA_VERSION} ({detail}); check access "
            "to Maven Central or set AGENTLOG_KAFKA_HOME to an unpacked Apache Kafka"
        )
    try:
        partial.rename(target)
    except OSError:  # another process finished first: use theirs
        shutil.rmtree(partial, ignore_errors=True)
    return target


def _libs(settings: Settings) -> tuple[Path, str]:
    """The folder of jars to run and the Kafka version they hold."""
    if settings.kafka_home is not None:
        libs = settings.kafka_home / "libs"
        version = _version_of(libs)
        if version is None:
            raise DevBrokerError(
                f"AGENTLOG_KAFKA_HOME={settings.kafka_home} holds no libs/kafka_2.13-*.jar; "
                "point it at an unpacked Apache Kafka distribution"
            )
        return libs, version
    libs = _resolve_jars(settings)
    return libs, _version_of(libs) or KAFKA_VERSION


def java_and_classpath(settings: Settings) -> tuple[str, str]:
    """The `java` to run and the classpath of Apache Kafka's jars (resolved if not cached
    yet), for running Kafka configured otherwise than the dev broker is (the tests' broker
    with TLS listeners)."""
    java = _java(settings)
    libs, _ = _libs(settings)
    return java, f"{libs}/*"


def _ports(settings: Settings, port: int | None, brokers: int) -> list[tuple[int, int]]:
    """Each broker's client and controller ports: those of the last run when still free,
    so clients that remember the addresses find the brokers again."""
    home = settings.state_dir / "kafka"
    remembered = home / ("ports.json" if brokers == 1 else f"ports-{brokers}.json")
    previous: list[object] = []
    try:
        loaded = json.loads(remembered.read_text())
        previous = [loaded] if brokers == 1 else list(loaded)
    except (OSError, ValueError, TypeError):
        pass
    taken: set[int] = set()

    def pick(wanted: object, given: int | None = None) -> int:
        if given is not None:
            chosen = given
        elif (
            isinstance(wanted, int)
            and 0 < wanted < 65536
            and wanted not in taken
            and port_is_free(wanted)
        ):
            chosen = wanted
        else:
            chosen = free_port()
            while chosen in taken:
                chosen = free_port()
        taken.add(chosen)
        return chosen

    ports = []
    for index in range(brokers):
        before = previous[index] if index < len(previous) else None
        last = before if isinstance(before, dict) else {}
        broker = pick(last.get("broker"), port if index == 0 else None)
        ports.append((broker, pick(last.get("controller"))))
    pairs = [{"broker": b, "controller": c} for b, c in ports]
    home.mkdir(parents=True, exist_ok=True)
    remembered.write_text(json.dumps(pairs[0] if brokers == 1 else pairs))
    return ports


def _server_properties(node: _NodeFiles, ports: list[tuple[int, int]]) -> str:
    """Every broker is also a controller (KRaft combined mode) and every controller a
    voter: a quorum of three outlives any one node, the leader of the quorum included,
    with three JVMs instead of the six of separate controllers."""
    broker, controller = ports[node.node_id - 1]
    voters = ",".join(f"{i}@127.0.0.1:{c}" for i, (_, c) in enumerate(ports, start=1))
    # Internal topics as replicated as the cluster allows, and with three replicas an
    # acks=all write waits for two of them (the leader and one follower): one broker may
    # be down without stopping writes, and no acknowledged write lives on one disk only.
    replicas = str(min(3, len(ports)))
    min_insync = "2" if len(ports) >= 3 else "1"
    properties = {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://127.0.0.1:{broker},CONTROLLER://127.0.0.1:{controller}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{broker}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(node.data_dir),
        "default.replication.factor": replicas,
        "min.insync.replicas": min_insync,
        "offsets.topic.replication.factor": replicas,
        "offsets.topic.num.partitions": "6",
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min_insync,
        "transaction.state.log.num.partitions": "6",
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": min_insync,
        # A group forms as soon as its members join, not 3 s later.
        "group.initial.rebalance.delay.ms": "0",
        # Topics exist because agentlog created them, as in production.
        "auto.create.topics.enable": "false",
        "num.partitions": "1",
        # Retention that a test sets is enforced within seconds.
        "log.retention.check.interval.ms": "2000",
        "log.segment.delete.delay.ms": "1000",
    }
    return "".join(f"{key}={value}\n" for key, value in properties.items())


def _cluster_id() -> str:
    """A random cluster id as Kafka makes them: base64 of a UUID, never starting with
    "-" (the format tool would read it as an option)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _formatted_id(node: _NodeFiles) -> str | None:
    """The cluster id a formatted log directory belongs to; None if not formatted."""
    try:
        text = (node.data_dir / "meta.properties").read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "cluster.id" and re.fullmatch(r"[A-Za-z0-9_\-]{22}", value.strip()):
            return value.strip()
    return None


def cluster_id_of(settings: Settings, brokers: int = 1) -> str:
    """The cluster id the on-disk log was formatted with: which log it is."""
    return _formatted_id(_node_files(settings, brokers)[0]) or "unformatted"


def formatted(settings: Settings, brokers: int = 1) -> bool:
    """Whether the on-disk log exists (a start keeps it; a start without it makes one)."""
    return all(_formatted_id(node) for node in _node_files(settings, brokers))


def _format_once(java: str, classpath: str, nodes: list[_NodeFiles]) -> None:
    """Give new log directories their cluster id (the one the cluster's formatted
    directories have, else a new one); formatted ones are kept as they are."""
    known = [found for found in map(_formatted_id, nodes) if found]
    cluster_id = known[0] if known else _cluster_id()
    waiting = []
    for node in nodes:
        if _formatted_id(node):
            continue
        private_dir(node.data_dir)
        tool = [java, "-cp", classpath, "kafka.tools.StorageTool", "format"]
        command = [*tool, "-t", cluster_id, "-c", str(node.config)]
        out = open_private_append(node.log_file)  # closed below, after the tool exits
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        waiting.append((node, process, out))
    failed = []
    for node, process, out in waiting:
        try:
            code = process.wait(timeout=_FORMAT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        out.close()
        if code != 0:
            failed.append(
                f"{node.data_dir} ({log_tail(node.log_file) or code}; see {node.log_file})"
            )
    if failed:
        raise DevBrokerError(f"formatting the Kafka log directory failed: {'; '.join(failed)}")


def ensure_runnable(settings: Settings) -> None:
    """Raise DevBrokerError saying what is missing unless Java and the jars are here
    (resolving the jars if they are not cached yet)."""
    _java(settings)
    _libs(settings)


def _heap(settings: Settings, brokers: int) -> str:
    if settings.kafka_heap is not None:
        return settings.kafka_heap
    return "512m" if brokers == 1 else "384m"


def _launch(
    settings: Settings, java: str, classpath: str, node: _NodeFiles, brokers: int
) -> subprocess.Popen[bytes]:
    heap = _heap(settings, brokers)
    log4j = resources.files("agentlog.devbroker").joinpath("log4j2.properties")
    with resources.as_file(log4j) as log4j_path, open_private_append(node.log_file) as log:
        return subprocess.Popen(
            [
                java,
                f"-Xmx{heap}",
                f"-Xms{heap}",
                "-XX:+UseG1GC",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={log4j_path}",
                f"-Dkafka.logs.dir={node.log_file.parent}",
                "-cp",
                classpath,
                MAIN_CLASS,
                str(node.config),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _wait_for_cluster(
    launched: list[tuple[subprocess.Popen[bytes], DevBrokerNode]],
    record: DevBrokerRecord,
    wait_seconds: float,
) -> None:
    """Return once every started broker answers and the cluster lists all its brokers
    (so that `topics create` next sees them all); otherwise kill what was started and
    raise."""
    deadline = time.monotonic() + wait_seconds
    try:
        for process, node in launched:
            alone = DevBrokerRecord("kafka", node.pid, node.port, node.log_file)
            wait_until_answering(process, alone, max(1.0, deadline - time.monotonic()))
        listed = 0
        while (listed := brokers_listed(record.bootstrap)) < record.brokers:
            if time.monotonic() > deadline:
                raise DevBrokerError(
                    f"only {listed} of the {record.brokers} Kafka dev brokers joined the "
                    f"cluster within {wait_seconds:.0f}s; see "
                    f"{', '.join(node.log_file for node in record.nodes)}"
                )
            time.sleep(0.2)
    except BaseException:
        for process, _ in launched:
            if process.poll() is None:
                process.kill()
                process.wait()
        raise


def start(
    settings: Settings, port: int | None, wait_seconds: float, brokers: int = 1
) -> DevBrokerRecord:
    """Start one broker, or a cluster of `brokers` on loopback, and wait until it answers."""
    java = _java(settings)
    libs, version = _libs(settings)
    classpath = f"{libs}/*"
    files = _node_files(settings, brokers)
    ports = _ports(settings, port, brokers)
    for node in files:
        node.config.write_text(_server_properties(node, ports))
    _format_once(java, classpath, files)
    launched = []
    for node, (broker, controller) in zip(files, ports, strict=True):
        process = _launch(settings, java, classpath, node, brokers)
        launched.append(
            (
                process,
                DevBrokerNode(
                    node.node_id,
                    process.pid,
                    broker,
                    controller,
                    str(node.log_file),
                    str(node.data_dir),
                ),
            )
        )
    nodes = tuple(node for _, node in launched)
    record = DevBrokerRecord(
        engine="kafka",
        pid=nodes[0].pid,
        port=nodes[0].port,
        log_file=nodes[0].log_file,
        version=f"Apache Kafka {version}",
        data_dir=nodes[0].data_dir,
        nodes=nodes,
    )
    _wait_for_cluster(launched, record, wait_seconds)
    return record


def restart_stopped(
    settings: Settings, record: DevBrokerRecord, wait_seconds: float
) -> DevBrokerRecord:
    """Start again, on their ports and logs, the brokers of a cluster that are down;
    returns the record with their new pids."""
    stopped = [node for node in record.nodes if not node.running]
    if not stopped:
        return record
    java = _java(settings)
    libs, _ = _libs(settings)
    files = {node.node_id: node for node in _node_files(settings, record.brokers)}
    launched = []
    for node in stopped:
        process = _launch(settings, java, f"{libs}/*", files[node.node_id], record.brokers)
        launched.append((process, replace(node, pid=process.pid)))
    again = {node.node_id: node for _, node in launched}
    nodes = tuple(again.get(node.node_id, node) for node in record.nodes)
    restarted = replace(record, pid=nodes[0].pid, nodes=nodes)
    _wait_for_cluster(launched, restarted, wait_seconds)
    return restarted


def wipe(settings: Settings) -> bool:
    """Delete the on-disk log of the single broker and of every cluster; True if there
    was one."""
    home = settings.state_dir / "kafka"
    found = False
    for directory in [home / "data", *home.glob("data-*")]:
        found = found or directory.exists()
        shutil.rmtree(directory, ignore_errors=True)
    return found
