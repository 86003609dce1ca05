"""`agentlog demo`'s live phase: a few conversations through the agents runtime with
real tool workers (`agentlog.demo.live`), one of them dead-lettered, parked and
redriven; then what `agentlog status` says of the runtime's group."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click

from agentlog.cli._signals import until_signalled
from agentlog.consumers.group_status import collect_status

# The module, not its names: it uses the CLI's session and `dlq redrive`, so importing
# it first imports this module while it is still half-made.
from agentlog.demo import live
from agentlog.settings import Settings

LIVE_CONVERSATIONS = 8
TOOL_WORKERS = 3


def demo_live(settings: Settings, seed: int, phase: Callable[[str], None]) -> live.LiveResult:
    phase(
        f"running {LIVE_CONVERSATIONS} live conversations through the agents runtime "
        f"with {TOOL_WORKERS} tool workers ({live.SLOW_TOOL} hangs, {live.FAILING_TOOL}'s "
        "service is down)"
    )
    # Ctrl-C is taken as a flag the phase looks at between steps: raised as an exception
    # wherever it lands, it could land inside confluent-kafka building a client, which
    # turns it into a TypeError. The phase ends with KeyboardInterrupt (exit 130).
    with _quiet_runtime(), until_signalled(stop=lambda: None) as signalled:
        result = live.run_live(
            settings,
            seed,
            LIVE_CONVERSATIONS,
            TOOL_WORKERS,
            on_step=lambda line: click.echo(f"  {line}"),
            stop_requests=lambda: len(signalled.received),
        )
    calls = result.tool_calls
    click.echo(
        f"live: {len(result.conversations)} conversations in {result.seconds:.1f}s; "
        f"tool calls: {calls['completed']} completed, "
        f"{calls['timed out'] + calls['refused']} failed "
        f"({calls['timed out']} timed out after {live.SLOW_TOOL_TIMEOUT_S:g}s per attempt, "
        f"{calls['refused']} refused); handler retries {result.handler_retries}, "
        f"dead-lettered {result.dead_lettered}, parked {result.parked}"
    )
    outcomes = Counter(result.outcomes.values())
    click.echo("live outcomes: " + ", ".join(f"{k} {v}" for k, v in outcomes.most_common()))
    click.echo(
        f"  {result.letter_conversation}: {result.outcomes.get(result.letter_conversation)} "
        f"after the redrive of {result.letter_id}"
    )
    _status(settings, result.group)
    return result


@contextmanager
def _quiet_runtime() -> Iterator[None]:
    """The runtime warns of each failed handler attempt: the demo tells it itself."""
    logger = logging.getLogger("agentlog.consumers.triggers")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _status(settings: Settings, group: str) -> None:
    """`agentlog status` figures of the runtime's group."""
    report = collect_status(settings, groups=[group], timeout=5.0)
    for g in report.groups:
        click.echo(
            f"status of {g.group}: lag {'?' if g.lag is None else g.lag}, "
            f"dlq {g.dlq_depth}, parked conversations {g.parked_conversations}"
        )
