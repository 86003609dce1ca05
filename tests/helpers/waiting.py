"""The one wait for a condition in the tests: bounded, says what it waited for when it
gives up, and polls with a growing pause (never a busy spin, never a fixed sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

FIRST_PAUSE_S = 0.01
LONGEST_PAUSE_S = 0.25


def wait_for(condition: Callable[[], T], timeout: float, what: str) -> T:
    """The first truthy value of `condition()`, asked until `timeout` seconds have passed;
    past that, an AssertionError naming `what` and the last value seen.

    The condition may itself fail the test (an `assert` that the process under test is
    still alive, say): its error goes through at once rather than waiting out the bound.
    """
    deadline = time.monotonic() + timeout
    pause = FIRST_PAUSE_S
    while True:
        value = condition()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(
                f"timed out after {timeout:g}s waiting for {what} (last seen: {_short(value)})"
            )
        time.sleep(min(pause, left))
        pause = min(pause * 2, LONGEST_PAUSE_S)


def _short(value: object) -> str:
    """The last value seen, cut short: a timeout message is one readable line."""
    shown = repr(value)
    return shown if len(shown) <= 200 else f"{shown[:200]}..."
