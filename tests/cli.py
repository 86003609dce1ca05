"""Run the real `agentlog` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Run:
    code: int
    out: str
    err: str


def agentlog(*args: str, state_dir: Path, env: dict[str, str] | None = None, timeout=120) -> Run:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AGENTLOG_")} | {
        "AGENTLOG_STATE_DIR": str(state_dir)
    }
    environment.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", "agentlog", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return Run(done.returncode, done.stdout, done.stderr)
