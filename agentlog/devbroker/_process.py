"""What both engines share: free ports, waiting for a broker to answer, stopping it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from agentlog.dev_state import DevBrokerRecord, process_alive, process_marker
from agentlog.errors import DevBrokerError
from agentlog.settings import KAFKA_LOGGER


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether a broker could listen on `port` now. The probe binds as the brokers do,
    with SO_REUSEADDR: the connections of a broker just stopped linger in TIME_WAIT on
    its port for a minute, and must not make the port look taken (the broker would come
    back on another port, and every client that kept the address would lose it)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _answers_metadata(bootstrap: str) -> bool:
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "socket.timeout.ms": 1000,
        "logger": KAFKA_LOGGER,
    }
    admin = AdminClient(config)
    try:
        metadata = admin.list_topics(timeout=1)
    except Exception:
        return False
    return bool(metadata.brokers)


def log_tail(log_file: Path, lines: int = 1) -> str:
    try:
        text = log_file.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def wait_until_answering(
    process: subprocess.Popen[bytes], record: DevBrokerRecord, wait_seconds: float
) -> None:
    """Return once the broker answers metadata requests; kill it and raise if it exits
    or stays silent for `wait_seconds`."""
    deadline = time.monotonic() + wait_seconds
    while not _answers_metadata(record.bootstrap):
        if process.poll() is not None:
            raise DevBrokerError(
                f"the {record.engine} dev broker exited at start (code {process.returncode}) "
                f"on port {record.port}: {log_tail(Path(record.log_file)) or 'no output'}; "
                f"see {record.log_file}"
            )
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise DevBrokerError(
                f"the {record.engine} dev broker did not answer on {record.bootstrap} within "
                f"{wait_seconds:.0f}s; see {record.log_file}"
            )
        time.sleep(0.1)


def terminate(record: DevBrokerRecord, wait_seconds: float) -> None:
    """SIGTERM (a clean shutdown), then SIGKILL once `wait_seconds` have passed."""
    marker = process_marker(record)
    if not process_alive(record.pid, marker):
        return
    os.kill(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_seconds
    while process_alive(record.pid, marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    if process_alive(record.pid, marker):
        os.kill(record.pid, signal.SIGKILL)
        while process_alive(record.pid, marker) and time.monotonic() < deadline + 5:
            time.sleep(0.05)
