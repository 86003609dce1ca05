"""`agentlog import FILE`: OpenAI chat JSONL in, events on Kafka out."""

from __future__ import annotations

from pathlib import Path

import click

from agentlog.analytics.importer import import_file
from agentlog.cli._app import AppContext, cli, pass_app
from agentlog.consumers import open_sink
from agentlog.consumers.queries import INDEX
from agentlog.consumers.sinks import Where
from agentlog.display import visible
from agentlog.errors import AgentlogError
from agentlog.replay.transcript import counted
from agentlog.settings import Settings

# Conversation ids named after an import (the rest are counted).
_SHOWN = 5


# Asking the projections about more conversations than this would no longer be cheap.
_ASKED_AT_MOST = 1000


@cli.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--prefix",
    help="conversation ids are PREFIX-<line number> unless a line has its own "
    "conversation_id (default: import-<file name>)",
)
@click.option("--agent", default="assistant", show_default=True, help="the assistant's agent name")
@pass_app
def import_command(app: AppContext, file: Path, prefix: str | None, agent: str) -> None:
    """Record conversations from an OpenAI chat fine-tuning JSONL file (system, user,
    assistant and tool messages, parallel tool calls, tool errors, tools). Every line is
    checked first: a malformed line imports nothing. Importing a file again repeats the
    same event ids, which projections, replay and exports apply once."""
    settings = app.kafka_settings()
    held: list[int] = []
    imported = import_file(
        settings,
        file,
        prefix=prefix,
        agent=agent,
        before_producing=lambda ids: held.append(_already_projected(settings, ids)),
    )
    click.echo(
        f"imported {counted(len(imported.conversations), 'conversation')} "
        f"({counted(imported.events, 'event')}) "
        f"from {file} to {settings.events_topic} in {imported.seconds:.2f}s"
    )
    ids = [visible(c) for c in imported.conversations]  # ids from the file
    if ids:
        more = f" ... and {len(ids) - _SHOWN} more" if len(ids) > _SHOWN else ""
        click.echo(f"conversations: {', '.join(ids[:_SHOWN])}{more}")
        click.echo(f"see one: agentlog replay {ids[0]}")
    if held and held[0]:
        were = "was" if held[0] == 1 else "were"
        click.echo(
            f"note: {counted(held[0], 'conversation')} of the file {were} already on the log "
            f"(the projections at {settings.sink_shown} hold them): their events carry the same "
            "ids, so importing again changes nothing; replay shows the copies as repeats",
            err=True,
        )


def _already_projected(settings: Settings, conversation_ids: list[str]) -> int:
    """How many of the conversations (of the first _ASKED_AT_MOST) the projections hold;
    0 when there are none to ask (never projected, or held by a running projector)."""
    url = settings.sink_url
    if url.startswith("duckdb:"):
        if not Path(url.removeprefix("duckdb:").removeprefix("//")).expanduser().exists():
            return 0
    try:
        with open_sink(url, read_only=True) as sink:
            return sum(
                1
                for conversation_id in conversation_ids[:_ASKED_AT_MOST]
                if sink.select(INDEX, [Where("conversation_id", "=", conversation_id)])
            )
    except AgentlogError:
        return 0
