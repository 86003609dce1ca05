"""A private PostgreSQL cluster for the tests: initdb in a temporary directory, started
on a free port, stopped at the end.

Written by hand rather than with pytest-postgresql because CI runs as root, which
PostgreSQL refuses: as root the server runs as the `postgres` user that Debian's
package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from helpers import wait_for


def server_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl (newest Debian version first), or None."""
    debian = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda path: int(Path(path).parent.parent.name),
    )
    if debian:
        return Path(debian[-1]).parent
    found = shutil.which("pg_ctl")
    return Path(found).resolve().parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_server_user() -> tuple[list[str], int | None, int | None]:
    """How to run the server's commands: as root, through `runuser -u postgres`."""
    if os.geteuid() != 0:
        return [], None, None
    user = pwd.getpwnam("postgres")
    return ["runuser", "-u", "postgres", "--"], user.pw_uid, user.pw_gid


@contextmanager
def private_cluster(root: Path, wait_seconds: float = 60) -> Iterator[str]:
    """Yield the URL of a fresh cluster's `test` database; the cluster lives under `root`."""
    binaries = server_binaries()
    if binaries is None:
        raise FileNotFoundError("PostgreSQL server binaries (pg_ctl, initdb) are not installed")
    prefix, uid, gid = _as_server_user()
    data = root / "data"
    sockets = root / "sockets"
    for folder in (root, data, sockets):
        folder.mkdir(parents=True, exist_ok=True)
        if uid is not None:
            os.chown(folder, uid, gid if gid is not None else -1)
    port = _free_port()

    def run(*command: str) -> None:
        done = subprocess.run(
            [*prefix, *command], capture_output=True, text=True, timeout=wait_seconds
        )
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {(done.stderr or done.stdout).strip()}")

    run(str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8")
    options = (
        f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    run(
        str(binaries / "pg_ctl"),
        "-D",
        str(data),
        "-o",
        options,
        "-l",
        str(root / "log"),
        "-w",
        "-t",
        str(int(wait_seconds)),
        "start",
    )
    try:
        url = f"postgresql://postgres@127.0.0.1:{port}"
        import psycopg

        def created() -> bool:
            try:
                with psycopg.connect(f"{url}/postgres", autocommit=True, connect_timeout=3) as c:
                    c.execute("CREATE DATABASE test")
                return True
            except psycopg.OperationalError:  # not accepting connections yet
                return False

        wait_for(created, wait_seconds, "the private PostgreSQL cluster to take a database")
        yield f"{url}/test"
    finally:
        subprocess.run(
            [*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=wait_seconds,
        )
