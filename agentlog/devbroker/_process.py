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


def brokers_listed(bootstrap: str) -> int:
    """How many brokers the metadata from `bootstrap` lists; 0 if nothing answers."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "socket.timeout.ms": 1000,
        "logger": KAFKA_LOGGER,
    }
    admin = AdminClient(config)
    try:
        metadata = admin.list_topics(timeout=1)
    except Exception:
        return 0
    return len(metadata.brokers)


def _answers_metadata(bootstrap: str) -> bool:
    return brokers_listed(bootstrap) > 0


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
    """SIGTERM (a clean shutdown) to the broker, or to every broker of a cluster at once
    (each needs the others' votes to shut down cleanly), then SIGKILL to those still
    running once `wait_seconds` have passed."""
    marker = process_marker(record)
    pids = [node.pid for node in record.nodes] or [record.pid]
    running = [pid for pid in pids if process_alive(pid, marker)]
    for pid in running:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_seconds
    while any(process_alive(pid, marker) for pid in running) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in running:
        if process_alive(pid, marker):
            os.kill(pid, signal.SIGKILL)
    while any(process_alive(pid, marker) for pid in running) and time.monotonic() < deadline + 5:
        time.sleep(0.05)
