"""`agentlog sagas show CONVERSATION`: each saga of a conversation as its log records it."""

from __future__ import annotations

import click

from agentlog.cli._app import AppContext, cli, pass_app
from agentlog.consumers.sagas import read_saga_history, saga_states
from agentlog.display import visible
from agentlog.errors import ConversationNotFound


@cli.group()
def sagas() -> None:
    """Sagas (multi-agent tasks of steps with compensation) as the log records them."""


@sagas.command()
@click.argument("conversation_id")
@click.option("--saga", "saga_id", help="only this saga id")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="seconds to wait for Kafka before giving up",
)
@pass_app
def show(app: AppContext, conversation_id: str, saga_id: str | None, timeout: float) -> None:
    """Where each saga of CONVERSATION is (running, compensating, ended and how) and
    each step's status, read from the conversation's partition of the events topic."""
    settings = app.kafka_settings()
    history = read_saga_history(settings, conversation_id, saga_id, timeout=timeout)
    if not history.conversation_events:
        raise ConversationNotFound(
            f"no conversation {conversation_id!r} on {settings.events_topic}: its partition "
            "holds no event of it"
        )
    states = saga_states(history.events)
    if not states:
        which = f"saga {saga_id}" if saga_id else "sagas"
        click.echo(f"no {which} recorded in conversation {conversation_id}")
        return
    for state in states.values():
        click.echo(visible(state.summary()))
