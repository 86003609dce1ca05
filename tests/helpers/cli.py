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


TESTS = Path(__file__).parent.parent


def clean_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without AGENTLOG_* settings, with the tests' modules
    importable (for `--projection` classes defined here)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AGENTLOG_")}
    environment["PYTHONPATH"] = os.pathsep.join([str(TESTS), environment.get("PYTHONPATH", "")])
    environment.update(extra or {})
    return environment


def agentlog_process(*args: str, env: dict[str, str] | None = None, **popen) -> subprocess.Popen:
    """A long-running `agentlog` command (follow, projector), to signal and wait for."""
    return subprocess.Popen(
        [sys.executable, "-m", "agentlog", *args], env=clean_environment(env), **popen
    )


def agentlog(*args: str, state_dir: Path, env: dict[str, str] | None = None, timeout=120) -> Run:
    environment = clean_environment({"AGENTLOG_STATE_DIR": str(state_dir), **(env or {})})
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
