"""Apache Kafka itself as the dev broker: KRaft combined mode (one broker that is also
its controller), run by the local `java`, its log on disk under the state directory.

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
import uuid
from importlib import resources
from pathlib import Path

from agentlog.dev_state import DevBrokerRecord
from agentlog.devbroker._process import free_port, port_is_free, wait_until_answering
from agentlog.errors import DevBrokerError
from agentlog.private_files import open_private_append, private_dir
from agentlog.settings import Settings

KAFKA_VERSION = "4.1.1"
MAIN_CLASS = "kafka.Kafka"
_RESOLVE_SECONDS = 600
_FORMAT_SECONDS = 120


def data_dir(settings: Settings) -> Path:
    return settings.state_dir / "kafka" / "data"


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


def _ports(settings: Settings, port: int | None) -> tuple[int, int]:
    """The broker and controller ports: those of the last run when still free, so
    clients that remember the address find the broker again."""
    remembered = settings.state_dir / "kafka" / "ports.json"
    previous: dict[str, int] = {}
    try:
        previous = json.loads(remembered.read_text())
    except (OSError, ValueError):
        pass
    broker = port or previous.get("broker")
    if broker is None or (port is None and not port_is_free(broker)):
        broker = free_port()
    controller = previous.get("controller")
    if controller is None or controller == broker or not port_is_free(controller):
        controller = free_port()
        while controller == broker:
            controller = free_port()
    remembered.parent.mkdir(parents=True, exist_ok=True)
    remembered.write_text(json.dumps({"broker": broker, "controller": controller}))
    return broker, controller


def _server_properties(settings: Settings, broker: int, controller: int) -> str:
    single_node = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller}",
        "listeners": f"PLAINTEXT://127.0.0.1:{broker},CONTROLLER://127.0.0.1:{controller}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{broker}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir(settings)),
        # One broker: internal topics cannot have more replicas than that.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "6",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "6",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # A group forms as soon as its members join, not 3 s later.
        "group.initial.rebalance.delay.ms": "0",
        # Topics exist because agentlog created them, as in production.
        "auto.create.topics.enable": "false",
        "num.partitions": "1",
        # Retention that a test sets is enforced within seconds.
        "log.retention.check.interval.ms": "2000",
        "log.segment.delete.delay.ms": "1000",
    }
    return "".join(f"{key}={value}\n" for key, value in single_node.items())


def _cluster_id() -> str:
    """A random cluster id as Kafka makes them: base64 of a UUID, never starting with
    "-" (the format tool would read it as an option)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def cluster_id_of(settings: Settings) -> str:
    """The cluster id the on-disk log was formatted with: which log it is."""
    try:
        for line in (data_dir(settings) / "meta.properties").read_text().splitlines():
            name, _, value = line.partition("=")
            if name.strip() == "cluster.id":
                return value.strip()
    except OSError:
        pass
    return "unformatted"


def formatted(settings: Settings) -> bool:
    """Whether the on-disk log exists (a start keeps it; a start without it makes one)."""
    return (data_dir(settings) / "meta.properties").exists()


def _format_once(java: str, classpath: str, config: Path, settings: Settings, log: Path) -> None:
    """Give a new data directory its cluster id; a formatted one is kept as it is."""
    if formatted(settings):
        return
    private_dir(data_dir(settings))
    done = subprocess.run(
        [
            java,
            "-cp",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            _cluster_id(),
            "-c",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=_FORMAT_SECONDS,
        stdin=subprocess.DEVNULL,
    )
    with open_private_append(log) as out:
        out.write((done.stdout + done.stderr).encode())
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise DevBrokerError(
            f"formatting the Kafka log directory {data_dir(settings)} failed: "
            f"{lines[-1] if lines else done.returncode}; see {log}"
        )


def ensure_runnable(settings: Settings) -> None:
    """Raise DevBrokerError saying what is missing unless Java and the jars are here
    (resolving the jars if they are not cached yet)."""
    _java(settings)
    _libs(settings)


def start(settings: Settings, port: int | None, wait_seconds: float) -> DevBrokerRecord:
    java = _java(settings)
    libs, version = _libs(settings)
    broker_port, controller_port = _ports(settings, port)
    home = settings.state_dir / "kafka"
    config = home / "server.properties"
    config.write_text(_server_properties(settings, broker_port, controller_port))
    log_file = home / "broker.log"
    classpath = f"{libs}/*"
    _format_once(java, classpath, config, settings, log_file)
    log4j = resources.files("agentlog.devbroker").joinpath("log4j2.properties")
    with resources.as_file(log4j) as log4j_path, open_private_append(log_file) as log:
        process = subprocess.Popen(
            [
                java,
                f"-Xmx{settings.kafka_heap}",
                f"-Xms{settings.kafka_heap}",
                "-XX:+UseG1GC",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={log4j_path}",
                f"-Dkafka.logs.dir={home}",
                "-cp",
                classpath,
                MAIN_CLASS,
                str(config),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    record = DevBrokerRecord(
        engine="kafka",
        pid=process.pid,
        port=broker_port,
        log_file=str(log_file),
        version=f"Apache Kafka {version}",
        data_dir=str(data_dir(settings)),
    )
    wait_until_answering(process, record, wait_seconds)
    return record


def wipe(settings: Settings) -> bool:
    """Delete the on-disk log; True if there was one."""
    found = data_dir(settings).exists()
    shutil.rmtree(data_dir(settings), ignore_errors=True)
    return found
