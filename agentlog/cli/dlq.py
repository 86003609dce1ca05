"""`agentlog dlq`: the dead letters, why each failed, and sending them back.

Everything is read from the dead-letter topic (`DeadLetterStates`, the one fold); every
change is a control record appended to it, so two people redriving the same letter
apply it once.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import click

from agentlog.cli._app import AppContext, cli, pass_app
from agentlog.consumers.dead_letters import (
    OPEN,
    PROJECTION,
    PURGED,
    REDRIVEN,
    REOPENED,
    RESOLVED,
    SKIPPED,
    TRIGGER,
    DeadLetters,
    DeadLetterStates,
    LetterState,
    dead_letter_states,
)
from agentlog.display import visible
from agentlog.errors import ConfigurationError, DecodeError
from agentlog.reader import read_partitions
from agentlog.render import iso_time
from agentlog.replay.transcript import counted
from agentlog.serde import decode
from agentlog.settings import Settings

_group_option = click.option("--group", help="only the letters of this consumer group")
_format_option = click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)


@cli.group()
def dlq() -> None:
    """Dead letters: list, show, redrive, skip, purge."""


def _states(app: AppContext) -> tuple[Settings, DeadLetterStates]:
    settings = app.kafka_settings()
    return settings, dead_letter_states(settings, idle_timeout=10.0)


def _age(letter: LetterState, now: datetime) -> str:
    if not letter.dead_lettered_at:
        return "?"
    try:
        seconds = (now - datetime.fromisoformat(letter.dead_lettered_at)).total_seconds()
    except ValueError:
        return "?"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{max(0, seconds):.0f}s"


def _summary(letter: LetterState, now: datetime) -> dict[str, Any]:
    return {
        "id": letter.id,
        "group": letter.group,
        "kind": letter.kind,
        "state": letter.state,
        "age": _age(letter, now),
        "dead_lettered_at": letter.dead_lettered_at,
        "attempts": letter.attempts,
        "error": letter.error,
        "exception_class": letter.exception_class,
        "conversation": letter.conversation,
        "handler": letter.handler,
        "parked": len(letter.parked) if letter.parks_conversation else 0,
    }


@dlq.command("list")
@_group_option
@click.option("--all", "show_all", is_flag=True, help="include purged letters")
@_format_option
@pass_app
def list_command(app: AppContext, group: str | None, show_all: bool, fmt: str) -> None:
    """One line per dead letter: id, group, kind, state, age, error; for triggers the
    conversation parked behind it and how many of its events wait."""
    _, states = _states(app)
    letters = (
        sorted(
            (lt for lt in states.letters.values() if group is None or lt.group == group),
            key=lambda lt: (lt.dead_lettered_at or "", lt.id),
        )
        if show_all
        else states.visible(group)
    )
    now = datetime.now(UTC)
    if fmt == "json":
        click.echo(json.dumps([_summary(lt, now) for lt in letters], indent=2))
        return
    if not letters:
        click.echo("no dead letters" + (f" of group {group}" if group else ""))
        return
    rows = [
        (
            lt.id,
            lt.group,
            lt.kind,
            lt.state,
            _age(lt, now),
            _conversation_cell(lt),
            (lt.error.splitlines() or [""])[0][:80],
        )
        for lt in letters
    ]
    header = ("ID", "GROUP", "KIND", "STATE", "AGE", "CONVERSATION", "ERROR")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        line = "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
        click.echo(visible(line))


def _event_of(value: bytes | None) -> Any:
    try:
        record = decode(value)
    except DecodeError as exc:
        return {"undecodable": exc.reason, "bytes": len(value or b"")}
    name, body = record["payload"]
    occurred_at = iso_time(record["occurred_at"])
    return {**record, "occurred_at": occurred_at, "payload": {"type": name, **body}}


@dlq.command("show")
@click.argument("letter_id", metavar="ID")
@_group_option
@_format_option
@pass_app
def show_command(app: AppContext, letter_id: str, group: str | None, fmt: str) -> None:
    """Everything about one dead letter: its headers (agentlog's and Kafka Connect's),
    the decoded event, and the events parked behind it."""
    _, states = _states(app)
    letter = states.find(letter_id, group)
    shown = {
        **_summary(letter, datetime.now(UTC)),
        "history": letter.history,
        "origin": {
            "topic": letter.held.origin_topic,
            "partition": letter.held.origin_partition,
            "offset": letter.held.origin_offset,
        },
        "headers": {k: v.decode(errors="replace") for k, v in letter.held.headers},
        "event": _event_of(letter.held.value),
        "parked_events": [
            {"offset": p.origin_offset, "event": _event_of(p.value)} for p in letter.parked
        ],
    }
    if fmt == "json":
        click.echo(json.dumps(shown, indent=2, default=str))
        return
    for name in ("id", "group", "kind", "state", "age", "attempts", "error", "conversation"):
        if shown[name] is not None:
            click.echo(visible(f"{name}: {shown[name]}"))
    click.echo(visible(f"history: {', '.join(letter.history) or '-'}"))
    click.echo("headers:")
    for key, value in shown["headers"].items():  # written by whoever produced the letter
        click.echo(visible(f"  {key}: {value}"))
    click.echo("event:")
    click.echo(visible("  " + json.dumps(shown["event"], default=str)))
    if letter.kind == TRIGGER:
        click.echo(f"parked events: {len(letter.parked)}")
        for parked in shown["parked_events"]:
            event = parked["event"]
            kind = event.get("payload", {}).get("type", "?") if isinstance(event, dict) else "?"
            click.echo(visible(f"  offset {parked['offset']}: {kind}"))


def _conversation_cell(letter: LetterState) -> str:
    """The conversation, and how many of its events wait while it is parked (none wait
    once the letter is resolved: they ran)."""
    if not letter.conversation:
        return ""
    if not letter.parks_conversation:
        return letter.conversation
    return f"{letter.conversation} ({len(letter.parked)} parked)"


_wait_option = click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="trigger letters: seconds to wait for the agents runtime to report how it went "
    "(0: do not wait)",
)


def _act(
    app: AppContext, letter_id: str, group: str | None, action: str, wait: float = 0.0
) -> None:
    settings, states = _states(app)
    before = states.find(letter_id, group).state
    click.echo(act_on_letter(settings, states, letter_id, group, action))
    letter = states.find(letter_id, group)
    if wait <= 0 or before != OPEN or letter.kind != TRIGGER or action not in (REDRIVEN, SKIPPED):
        return
    outcome = await_outcome(settings, states, letter, wait)
    if outcome is None:
        click.echo(
            f"{letter.id}: no agents runtime of group {letter.group} took it within "
            f"{wait:g}s; it runs when `agentlog agents run` of that group is running"
        )
    elif outcome.state == RESOLVED:
        click.echo(f"{letter.id}: resolved: the handler ran and so did the events parked behind it")
    else:
        click.echo(
            f"{letter.id}: the handler failed again, the letter is {outcome.state} and "
            f"{letter.conversation} stays parked: {(outcome.error.splitlines() or ['?'])[0]}",
            err=True,
        )
        raise SystemExit(1)


def await_outcome(
    settings: Settings, states: DeadLetterStates, letter: LetterState, wait: float
) -> LetterState | None:
    """The letter once a runtime has resolved or reopened it, None if it is still under
    way after `wait` seconds (the dead-letter topic read on from where `states` stopped)."""
    deadline = time.monotonic() + wait
    seen = len(letter.history)  # the actions before this redrive or skip
    while time.monotonic() < deadline:
        for record in read_partitions(
            settings, settings.dlq_topic, start_offsets=dict(states.ends), idle_timeout=5.0
        ):
            states.add(record)
        found = states.find(letter.id, letter.group)
        if any(action in (RESOLVED, REOPENED) for action in found.history[seen:]):
            return found
        time.sleep(0.2)  # a poll of the topic: nothing to await but a new record
    return None


def act_on_letter(
    settings: Settings,
    states: DeadLetterStates,
    letter_id: str,
    group: str | None,
    action: str,
) -> str:
    """Redrive, skip or purge a dead letter (a control record on the dead-letter topic;
    a projection's record sent back to its topic); what was done, in one line."""
    letter = states.find(letter_id, group)
    if action == PURGED:
        if letter.state == PURGED:
            return f"{letter.id} is already purged: nothing done"
        if letter.parks_conversation:
            raise ConfigurationError(
                f"{letter.id} parks conversation {letter.conversation} ({letter.state}): "
                "redrive or skip it first"
            )
    elif letter.state != OPEN:
        return f"{letter.id} is {letter.state}, not open: nothing done"
    if action == SKIPPED and letter.kind != TRIGGER:
        raise ConfigurationError(
            f"{letter.id} is a {letter.kind} letter: skip is for trigger letters "
            "(purge hides a projection letter)"
        )
    if action in (REDRIVEN, SKIPPED) and letter.kind == TRIGGER and not letter.conversation:
        raise ConfigurationError(
            f"{letter.id} is not an event ({letter.error}); no handler can run it: purge it"
        )
    sender = DeadLetters(settings, letter.group)
    try:
        timeout = settings.dead_letter_timeout_s
        if action == REDRIVEN and letter.kind == PROJECTION:
            sender.send_back(letter, timeout)
        sender.control(letter, action, timeout)
    finally:
        sender.close()
    if letter.kind == TRIGGER and action in (REDRIVEN, SKIPPED):
        what = "re-run its handler, then" if action == REDRIVEN else "run"
        return (
            f"{letter.id}: {action}; the agents of group {letter.group} {what} the "
            f"{counted(len(letter.parked), 'parked event')} of {letter.conversation} and resolve it"
        )
    if action == REDRIVEN:
        return f"{letter.id}: redriven to {letter.held.origin_topic}"
    return f"{letter.id}: {action}"


@dlq.command("redrive")
@click.argument("letter_id", metavar="ID")
@_group_option
@_wait_option
@pass_app
def redrive_command(app: AppContext, letter_id: str, group: str | None, wait: float) -> None:
    """Send a dead letter back once fixed: a projection's record goes back to its topic
    (the projector applies its event id once); a trigger's handler runs again, then the
    events parked behind it, in order. A letter not open is left as it is. For a trigger
    letter, waits up to --wait seconds for the runtime's answer: exit 1 if the handler
    failed again (the letter is open again)."""
    _act(app, letter_id, group, REDRIVEN, wait)


@dlq.command("skip")
@click.argument("letter_id", metavar="ID")
@_group_option
@_wait_option
@pass_app
def skip_command(app: AppContext, letter_id: str, group: str | None, wait: float) -> None:
    """Drop a trigger's failed event and run the events parked behind it."""
    _act(app, letter_id, group, SKIPPED, wait)


@dlq.command("purge")
@click.argument("letter_id", metavar="ID")
@_group_option
@pass_app
def purge_command(app: AppContext, letter_id: str, group: str | None) -> None:
    """Hide a dead letter from `dlq list` (Kafka cannot delete one record: a control
    record says it is purged)."""
    _act(app, letter_id, group, PURGED)
