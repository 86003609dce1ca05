"""Run until signalled: the one way a long-running command (a service, a receiver, a
metrics endpoint) stops. SIGINT and SIGTERM ask the work to stop (it finishes what is in
hand, then returns); afterwards SIGINT (Ctrl-C) exits 130, as for any Ctrl-C, and SIGTERM
exits 0."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NoReturn

import click

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class Signalled:
    """The stop signals received while the work ran."""

    received: list[int] = field(default_factory=list)

    @property
    def interrupted(self) -> bool:
        """Ctrl-C (SIGINT) asked for the stop."""
        return signal.SIGINT in self.received

    def exit_code(self) -> int:
        return 130 if self.interrupted else 0

    def raise_if_interrupted(self, left: str) -> None:
        """After the work's own last words: Ctrl-C ends the command with exit 130
        (`agentlog`'s main turns KeyboardInterrupt into "interrupted" and 130), first
        saying what is `left` unfinished and how to finish it."""
        if self.interrupted:
            stopped_by_ctrl_c(left)


def stopped_by_ctrl_c(left: str) -> NoReturn:
    """Ctrl-C after a graceful stop: what is left and how to finish it, then exit 130."""
    click.echo(f"stopped by Ctrl-C: {left}", err=True)
    raise KeyboardInterrupt


@contextmanager
def until_signalled(stop: Callable[[], None]) -> Iterator[Signalled]:
    """Within the block, SIGINT and SIGTERM call `stop` (which must only ask: the work
    ends by returning) instead of interrupting; the previous handlers come back after."""
    signalled = Signalled()

    def handler(signum: int, _frame: object) -> None:
        signalled.received.append(signum)
        stop()

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield signalled
    finally:
        for sig, earlier in previous.items():
            signal.signal(sig, earlier)
