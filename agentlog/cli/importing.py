"""`agentlog import FILE`: OpenAI chat JSONL in, events on Kafka out."""

from __future__ import annotations

from pathlib import Path

import click

from agentlog.analytics.importer import import_file
from agentlog.cli._app import AppContext, cli, pass_app
from agentlog.replay.transcript import counted


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
    same event ids, which projections and exports apply once."""
    settings = app.kafka_settings()
    imported = import_file(settings, file, prefix=prefix, agent=agent)
    click.echo(
        f"imported {counted(len(imported.conversations), 'conversation')} "
        f"({counted(imported.events, 'event')}) "
        f"from {file} to {settings.events_topic} in {imported.seconds:.2f}s"
    )
