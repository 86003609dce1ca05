"""Agents for `agentlog agents run` in the tests: echo every user message.

With AGENTLOG_TEST_KILL_AT=N the process SIGKILLs itself right after the N-th echo is
on the log, before the runtime can commit the event that triggered it."""

import os
import signal
import threading

from agentlog.consumers.triggers import Agents

agents = Agents("echo")
_lock = threading.Lock()
_echoed = 0


@agents.on("user_message")
def echo(event, session):  # type: ignore[no-untyped-def]
    global _echoed
    session.agent_message("echo", f"you said: {event.payload['text']}")
    with _lock:
        _echoed += 1
        kill = _echoed == int(os.environ.get("AGENTLOG_TEST_KILL_AT", "0"))
    if kill:
        session.recorder.flush(10)
        os.kill(os.getpid(), signal.SIGKILL)
