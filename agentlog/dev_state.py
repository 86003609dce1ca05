"""The record a running dev broker leaves in the state directory, so any later command
or recorder on this machine finds it without being told where Kafka is.

The dev broker (`agentlog.devbroker`) writes it; the core only reads it. A cluster of
Kafka brokers (`agentlog dev up --engine kafka --brokers 3`) is one record with a node per
broker: clients bootstrap from all of them, so any one may be down.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from agentlog.errors import DevBrokerError
from agentlog.private_files import private_dir, replaced_whole
from agentlog.settings import Settings


@dataclass(frozen=True)
class DevBrokerNode:
    """One Kafka broker of the dev cluster (each is also a voter of its controller quorum)."""

    node_id: int
    pid: int
    port: int
    controller_port: int
    log_file: str
    data_dir: str

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return process_alive(self.pid, KAFKA_MARKER)


@dataclass(frozen=True)
class DevBrokerRecord:
    engine: str  # "tansu" or "kafka"
    pid: int  # the first node's, for a cluster
    port: int
    log_file: str
    version: str = ""
    data_dir: str | None = None  # None: memory only
    nodes: tuple[DevBrokerNode, ...] = ()  # kafka: every broker; tansu: none

    @property
    def bootstrap(self) -> str:
        if self.nodes:
            return ",".join(node.bootstrap for node in self.nodes)
        return f"127.0.0.1:{self.port}"

    @property
    def memory_only(self) -> bool:
        return self.data_dir is None

    @property
    def brokers(self) -> int:
        return max(1, len(self.nodes))

    def running_nodes(self) -> list[DevBrokerNode]:
        return [node for node in self.nodes if node.running]


def process_alive(pid: int, marker: bytes) -> bool:
    """Whether `pid` runs and its command line holds `marker` (a recycled pid must not
    pass for our broker); a zombie counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    if marker not in cmdline:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


KAFKA_MARKER = b"kafka.Kafka"


def process_marker(record: DevBrokerRecord) -> bytes:
    return b"tansu" if record.engine == "tansu" else KAFKA_MARKER


def read_record(settings: Settings) -> DevBrokerRecord | None:
    path = settings.dev_state_file
    if not path.exists():
        return None
    try:
        fields = json.loads(path.read_text())
        fields.setdefault("engine", "tansu")
        fields["nodes"] = tuple(DevBrokerNode(**node) for node in fields.get("nodes", ()))
        return DevBrokerRecord(**fields)
    except (ValueError, TypeError, AttributeError) as exc:
        raise DevBrokerError(
            f"dev broker state file {path} is unreadable ({exc}); delete it and run "
            "`agentlog dev up`"
        ) from None


def write_record(settings: Settings, record: DevBrokerRecord) -> None:
    private_dir(settings.state_dir, tighten=True)
    with replaced_whole(settings.dev_state_file) as out:
        out.write(json.dumps(asdict(record)).encode())


def running_record(settings: Settings) -> DevBrokerRecord | None:
    """The running dev broker, None if none was started; raises if it died (a cluster:
    if every node died; with some nodes down it still runs, `dev up` restarts them)."""
    record = read_record(settings)
    if record is None:
        return None
    alive = (
        bool(record.running_nodes())
        if record.nodes
        else process_alive(record.pid, process_marker(record))
    )
    if not alive:
        lost = (
            "its in-memory data is gone"
            if record.memory_only
            else f"its log is kept in {record.data_dir}"
        )
        raise DevBrokerError(
            f"the dev broker recorded in {settings.dev_state_file} ({record.engine}, pid "
            f"{record.pid}, port {record.port}) is no longer running and {lost}; run "
            "`agentlog dev up` to start it again"
        )
    return record
