"""Tools for the tool worker tests, run in the test process or by `agentlog tools work
tool_fixtures:tools` in a subprocess. They keep what they did in files under
AGENTLOG_TEST_TOOL_DIR, so that the tests see every run, in every process."""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import time
from pathlib import Path

from agentlog.consumers import ToolRegistry

BACKOFF = 0.2
SLEEPY_TIMEOUT = 0.5

tools = ToolRegistry(transient=(ConnectionError,), attempts=3, backoff=BACKOFF, timeout=10)


def _dir() -> Path:
    return Path(os.environ["AGENTLOG_TEST_TOOL_DIR"])


def _append(name: str, line: str) -> None:
    # O_APPEND: one write per line, whole, whichever process writes.
    fd = os.open(_dir() / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


def lines(name: str) -> list[str]:
    path = _dir() / name
    return path.read_text().splitlines() if path.exists() else []


def invocations(tool_call_id: str | None = None) -> list[str]:
    """Call ids of every run of a tool (one line per attempt, in any process)."""
    calls = [line.split()[0] for line in lines("invocations")]
    return calls if tool_call_id is None else [c for c in calls if c == tool_call_id]


def _invoked(tool_call_id: str) -> None:
    _append("invocations", f"{tool_call_id} {os.getpid()}")


@tools.tool
def record_effect(n: int, sleep_ms: int = 0, *, tool_call_id: str) -> dict:
    """A side effect made once per call id: the call id as the idempotency key."""
    _invoked(tool_call_id)
    time.sleep(sleep_ms / 1000)  # the scenario: a tool that takes its time
    with open(_dir() / "effects.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tool_call_id not in lines("effects"):
            _append("effects", tool_call_id)
    return {"n": n, "pid": os.getpid()}


@tools.tool
def kill_once(*, tool_call_id: str) -> str:
    """Kills its worker process the first time it runs (a crash mid-call)."""
    _invoked(tool_call_id)
    marker = _dir() / "killed-once"
    if not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return "survived"


@tools.tool
def flaky(fail_times: int, *, tool_call_id: str) -> str:
    """Raises a transient error on its first `fail_times` attempts."""
    _invoked(tool_call_id)
    if len(invocations(tool_call_id)) <= fail_times:
        raise ConnectionError("upstream unavailable")
    return "finally"


@tools.tool
def refuse(*, tool_call_id: str) -> None:
    """Fails for good: ValueError is not declared transient."""
    _invoked(tool_call_id)
    raise ValueError("invoice INV-9 does not exist")


@tools.tool(timeout=SLEEPY_TIMEOUT)
async def sleepy(seconds: float, *, tool_call_id: str) -> str:
    _invoked(tool_call_id)
    await asyncio.sleep(seconds)
    return "awake"


@tools.tool
def add(a: int, b: int) -> int:
    return a + b


@tools.tool(attempts=2)
def crash_always(*, tool_call_id: str) -> None:
    """Takes its worker process down on every run (a poison pill)."""
    _invoked(tool_call_id)
    os.kill(os.getpid(), signal.SIGKILL)


@tools.tool(timeout=SLEEPY_TIMEOUT)
def hang(*, tool_call_id: str) -> None:
    """A sync tool that never returns (its thread cannot be cancelled)."""
    _invoked(tool_call_id)
    time.sleep(3600)  # the scenario: a tool that never returns
