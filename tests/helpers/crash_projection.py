"""Projections for tests that run the projector in a subprocess (`--projection`)."""

from __future__ import annotations

import os
import signal
import time

from agentlog.consumers import Projection, handles
from agentlog.events import EVENT_TYPES

_seen = 0


class KillSelfMidBatch(Projection):
    """SIGKILLs its own process at the Nth event it handles (env AGENTLOG_TEST_KILL_AT):
    inside a handler, so inside an open sink transaction, mid-batch."""

    name = "kill_self_mid_batch"
    tables = ()

    @handles(*EVENT_TYPES)
    def count(self, event, state) -> None:
        global _seen
        _seen += 1
        if _seen == int(os.environ["AGENTLOG_TEST_KILL_AT"]):
            os.kill(os.getpid(), signal.SIGKILL)


class Slow(Projection):
    """Takes a millisecond per event, so a multi-process test can kill one mid-stream."""

    name = "slow"
    tables = ()

    @handles(*EVENT_TYPES)
    def wait(self, event, state) -> None:
        time.sleep(0.001)  # the scenario: a slow projection


class FailsOnRefunds(Projection):
    """A buggy projection: its handler raises for every saga step."""

    name = "fails_on_refunds"
    tables = ()

    @handles("saga_step_started")
    def explode(self, event, state) -> None:
        raise ValueError(f"cannot handle saga {event.payload['saga_id']}")
