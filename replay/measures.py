"""Numbers of recorded events as readers show them.

Events built by agentlog carry finite numbers (`agentlog.events.NUMBER_LIMIT`), but the
log also holds records of older versions and of producers that bypass agentlog: NaN,
infinities, 1e300, or null where the archive kept a NaN. Readers show those as `?` and
go on; they never fail on them.
"""

from __future__ import annotations

from typing import Any

from agentlog.events import number_problem


def measure(value: Any) -> float | None:
    """The value as a float if it is a number an event may hold, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float
        return None
    return None if number_problem(number) is not None else number


def number_text(value: Any, spec: str) -> str:
    """`format(value, spec)`, or `?` for what is not a measure."""
    number = measure(value)
    return "?" if number is None else format(number, spec)
