"""The record a running dev broker leaves in the state directory, so any later command
or recorder on this machine finds it without being told where Kafka is.

The dev broker (`agentlog.devbroker`) writes it; the core only reads it.
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
class DevBrokerRecord:
    engine: str  # "tansu" or "kafka"
    pid: int
    port: int
    log_file: str
    version: str = ""
    data_dir: str | None = None  # None: memory only

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def memory_only(self) -> bool:
        return self.data_dir is None


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


def process_marker(record: DevBrokerRecord) -> bytes:
    return b"tansu" if record.engine == "tansu" else b"kafka.Kafka"


def read_record(settings: Settings) -> DevBrokerRecord | None:
    path = settings.dev_state_file
    if not path.exists():
        return None
    try:
        fields = json.loads(path.read_text())
        fields.setdefault("engine", "tansu")
        return DevBrokerRecord(**fields)
    except (ValueError, TypeError) as exc:
        raise DevBrokerError(
            f"dev broker state file {path} is unreadable ({exc}); delete it and run "
            "`agentlog dev up`"
        ) from None


def write_record(settings: Settings, record: DevBrokerRecord) -> None:
    private_dir(settings.state_dir, tighten=True)
    with replaced_whole(settings.dev_state_file) as out:
        out.write(json.dumps(asdict(record)).encode())


def running_record(settings: Settings) -> DevBrokerRecord | None:
    """The running dev broker, None if none was started; raises if it died."""
    record = read_record(settings)
    if record is None:
        return None
    if not process_alive(record.pid, process_marker(record)):
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
